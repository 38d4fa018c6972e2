module pulse/bench/compare/go

go 1.19
