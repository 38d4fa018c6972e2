// Go side of Pulse's side-by-side comparison harness.
//
// Usage: go_compare <workload> [--workers N] [--duration-ms MS]
//
// Runs one workload (after one untimed warm-up for the throughput workloads),
// verifies its result and prints exactly one line of JSON on stdout. The
// workloads, their parameters and the output protocol are specified in
// ../WORKLOADS.md; keep this file in step with it.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Parameters (WORKLOADS.md, "Parameters").
const (
	spawnMany     = 10_000
	yieldTasks    = 200
	yieldsPerTask = 1_000
	pingPongPairs = 1_000
	chainLen      = 1_000
	skynetLeaves  = 1_000_000
	skynetSum     = 499_999_500_000
	fibN          = 27
	fibResult     = 196_418
	fibTasks      = 635_621 // 2*fib(28) - 1 calls, one goroutine each

	starveHogs        = 4
	starveProbePeriod = time.Millisecond
	starveBYieldEvery = 5_000 // work units (~50 ms of CPU)
	starveCSlots      = 1_024
)

// The work unit (WORKLOADS.md, "The work unit"): wuIters rounds of the
// splitmix64 step, about 10 µs on the reference machine.
const (
	wuIters        = 2_500
	wuSelftestIn   = uint64(0)
	wuSelftestOut  = uint64(0x3366ae420491b161)
	splitmixGamma  = uint64(0x9E3779B97F4A7C15)
	splitmixMul1   = uint64(0xBF58476D1CE4E5B9)
	splitmixMul2   = uint64(0x94D049BB133111EB)
	defaultWorkers = 2
)

//go:noinline
func workUnit(x uint64) uint64 {
	for i := 0; i < wuIters; i++ {
		x += splitmixGamma
		x = (x ^ (x >> 30)) * splitmixMul1
		x = (x ^ (x >> 27)) * splitmixMul2
		x ^= x >> 31
	}
	return x
}

// report is one finished run.
type report struct {
	elapsed time.Duration
	units   uint64
	check   string
	extra   [][2]string // extra "key", value (already JSON) pairs
}

func jsonStr(s string) string { return strconv.Quote(s) } // ASCII-safe for our messages

func printOK(workload string, workers int, r report) {
	ns := r.elapsed.Nanoseconds()
	per := 0.0
	if r.units > 0 {
		per = float64(ns) / float64(r.units)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"runtime":"go","workload":%s,"workers":%d,"ok":true,"elapsed_ns":%d,"units":%d,"ns_per_unit":%.3f,"check":%s`,
		jsonStr(workload), workers, ns, r.units, per, jsonStr(r.check))
	for _, kv := range r.extra {
		fmt.Fprintf(&b, `,"%s":%s`, kv[0], kv[1])
	}
	b.WriteString("}")
	fmt.Println(b.String())
}

func printErr(workload string, workers int, msg string) {
	fmt.Printf(`{"runtime":"go","workload":%s,"workers":%d,"ok":false,"error":%s}`+"\n",
		jsonStr(workload), workers, jsonStr(msg))
}

func expectEq[T comparable](what string, got, want T) error {
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// inRoot runs body in a root goroutine and waits for it from main; returns
// the wall time from spawn to completion.
func inRoot(body func() error) (time.Duration, error) {
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- body() }()
	err := <-done
	return time.Since(start), err
}

// 1. spawn_many_remote_idle: spawn from main, wait for all.
func spawnManyRemoteIdle() (report, error) {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(spawnMany)
	for i := 0; i < spawnMany; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	elapsed := time.Since(start)
	return report{elapsed: elapsed, units: spawnMany, check: strconv.Itoa(spawnMany)}, nil
}

// 2. spawn_many_local: a goroutine spawns 10,000; the last to finish closes a channel.
func spawnManyLocal() (report, error) {
	var rem int64
	elapsed, err := inRoot(func() error {
		atomic.StoreInt64(&rem, spawnMany)
		done := make(chan struct{})
		for i := 0; i < spawnMany; i++ {
			go func() {
				if atomic.AddInt64(&rem, -1) == 0 {
					close(done)
				}
			}()
		}
		<-done
		return nil
	})
	if err == nil {
		err = expectEq("remaining counter", atomic.LoadInt64(&rem), 0)
	}
	return report{elapsed: elapsed, units: spawnMany, check: strconv.Itoa(spawnMany)}, err
}

// 3. yield_many: 200 goroutines x 1,000 runtime.Gosched().
func yieldMany() (report, error) {
	var total uint64
	elapsed, err := inRoot(func() error {
		counts := make(chan uint64, yieldTasks)
		for t := 0; t < yieldTasks; t++ {
			go func() {
				n := uint64(0)
				for i := 0; i < yieldsPerTask; i++ {
					runtime.Gosched()
					n++
				}
				counts <- n
			}()
		}
		for t := 0; t < yieldTasks; t++ {
			total += <-counts
		}
		return nil
	})
	const units = yieldTasks * yieldsPerTask
	if err == nil {
		err = expectEq("total yields", total, units)
	}
	return report{elapsed: elapsed, units: units, check: strconv.FormatUint(total, 10)}, err
}

// 4. ping_pong: 1,000 pairs, one round trip each over two 1-buffered channels.
func pingPong() (report, error) {
	var rem, sum, bad int64
	elapsed, err := inRoot(func() error {
		atomic.StoreInt64(&rem, pingPongPairs)
		done := make(chan struct{})
		for i := 0; i < pingPongPairs; i++ {
			go func(i int64) {
				ping := make(chan int64, 1)
				pong := make(chan int64, 1)
				go func() {
					v := <-ping
					pong <- v + 1
				}()
				ping <- i
				if v := <-pong; v == i+1 {
					atomic.AddInt64(&sum, v)
				} else {
					atomic.AddInt64(&bad, 1)
				}
				if atomic.AddInt64(&rem, -1) == 0 {
					close(done)
				}
			}(int64(i))
		}
		<-done
		return nil
	})
	if err == nil {
		err = firstErr(
			expectEq("remaining pairs", atomic.LoadInt64(&rem), 0),
			expectEq("bad replies", atomic.LoadInt64(&bad), 0),
			expectEq("sum of replies", atomic.LoadInt64(&sum), int64(pingPongPairs*(pingPongPairs+1)/2)))
	}
	return report{elapsed: elapsed, units: pingPongPairs, check: strconv.FormatInt(sum, 10)}, err
}

// 5. chained_spawn: goroutine i starts goroutine i+1; goroutine 1000 signals.
func chainLink(i int, done chan<- int) {
	if i == chainLen {
		done <- i
		return
	}
	go chainLink(i+1, done)
}

func chainedSpawn() (report, error) {
	var last int
	elapsed, err := inRoot(func() error {
		done := make(chan int, 1)
		go chainLink(1, done)
		last = <-done
		return nil
	})
	if err == nil {
		err = expectEq("chain length", last, chainLen)
	}
	return report{elapsed: elapsed, units: chainLen, check: strconv.Itoa(last)}, err
}

// 6. skynet: 10-way fan-out, 1,000,000 leaves, one goroutine per node.
func skynet(out chan<- uint64, num, size uint64) {
	if size == 1 {
		out <- num
		return
	}
	step := size / 10
	children := make(chan uint64, 10)
	for i := uint64(0); i < 10; i++ {
		go skynet(children, num+i*step, step)
	}
	sum := uint64(0)
	for i := 0; i < 10; i++ {
		sum += <-children
	}
	out <- sum
}

func skynetWorkload() (report, error) {
	var sum uint64
	elapsed, err := inRoot(func() error {
		out := make(chan uint64, 1)
		go skynet(out, 0, skynetLeaves)
		sum = <-out
		return nil
	})
	if err == nil {
		err = expectEq("skynet sum", sum, skynetSum)
	}
	return report{elapsed: elapsed, units: skynetLeaves, check: strconv.FormatUint(sum, 10)}, err
}

// 7. fib: fib(27), one goroutine per call.
func fib(out chan<- uint64, n uint64) {
	if n < 2 {
		out <- n
		return
	}
	children := make(chan uint64, 2)
	go fib(children, n-1)
	go fib(children, n-2)
	out <- <-children + <-children
}

func fibWorkload() (report, error) {
	var v uint64
	elapsed, err := inRoot(func() error {
		out := make(chan uint64, 1)
		go fib(out, fibN)
		v = <-out
		return nil
	})
	if err == nil {
		err = expectEq("fib(27)", v, fibResult)
	}
	return report{elapsed: elapsed, units: fibTasks, check: strconv.FormatUint(v, 10)}, err
}

// 8. starve_{none,A,B,C}: a 1 ms sleep-loop probe next to 4 CPU hogs.

type hogResult struct{ units, x uint64 }

// hogA never yields: the loop body is call-free (the work unit is written out
// inline and the stop condition is an atomic load, an intrinsic), so the only
// way Go can take the CPU away from it is asynchronous preemption. A clock
// read (time.Now) would be a function call and so a cooperative preemption
// point; instead a timer sets *stop at the deadline.
func hogA(seed uint64, stop *uint32, out chan<- hogResult) {
	x, units := seed, uint64(0)
	for atomic.LoadUint32(stop) == 0 {
		for i := 0; i < wuIters; i++ {
			x += splitmixGamma
			x = (x ^ (x >> 30)) * splitmixMul1
			x = (x ^ (x >> 27)) * splitmixMul2
			x ^= x >> 31
		}
		units++
	}
	out <- hogResult{units, x}
}

// hogB yields (runtime.Gosched) once every starveBYieldEvery work units.
func hogB(seed uint64, deadline time.Time, out chan<- hogResult) {
	x, units := seed, uint64(0)
	for time.Now().Before(deadline) {
		x = workUnit(x)
		units++
		if units%starveBYieldEvery == 0 {
			runtime.Gosched()
		}
	}
	out <- hogResult{units, x}
}

// hogC uses an always-ready runtime resource after every work unit: a
// buffered channel used as a counting semaphore (send = acquire, receive =
// release) with far more slots than hogs, so it never blocks.
func hogC(seed uint64, deadline time.Time, sem chan struct{}, out chan<- hogResult) {
	x, units := seed, uint64(0)
	for time.Now().Before(deadline) {
		x = workUnit(x)
		units++
		sem <- struct{}{}
		<-sem
	}
	out <- hogResult{units, x}
}

// percentile returns the nearest-rank q-per-mille percentile of sorted
// samples: rank = ceil(q*n/1000) (integer arithmetic), clamped to [1, n].
func percentile(sorted []int64, q int) int64 {
	n := len(sorted)
	rank := (q*n + 999) / 1000
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

func us(ns int64) string { return strconv.FormatFloat(float64(ns)/1000.0, 'f', 1, 64) }

func starve(variant byte, duration time.Duration) (report, error) {
	if got := workUnit(wuSelftestIn); got != wuSelftestOut {
		return report{}, fmt.Errorf("work unit self-test: got %016x, want %016x", got, wuSelftestOut)
	}
	var lateness []int64
	var hogs []hogResult
	elapsed, err := inRoot(func() error {
		start := time.Now()
		deadline := start.Add(duration)

		// Sample 0 is the probe's start delay (spawn -> first run); then one
		// sample per 1 ms sleep, at least one sleep even if the probe first
		// runs after the deadline.
		probeDone := make(chan []int64, 1)
		spawned := time.Now()
		go func() {
			samples := make([]int64, 0, duration/time.Millisecond+16)
			samples = append(samples, int64(time.Since(spawned)))
			for {
				intended := time.Now().Add(starveProbePeriod)
				time.Sleep(starveProbePeriod)
				woke := time.Now()
				late := woke.Sub(intended)
				if late < 0 {
					late = 0
				}
				samples = append(samples, int64(late))
				if !woke.Before(deadline) {
					break
				}
			}
			probeDone <- samples
		}()

		results := make(chan hogResult, starveHogs)
		nhogs := 0
		if variant != 0 {
			nhogs = starveHogs
			var stop uint32
			sem := make(chan struct{}, starveCSlots)
			if variant == 'A' {
				time.AfterFunc(time.Until(deadline), func() { atomic.StoreUint32(&stop, 1) })
			}
			for h := 0; h < starveHogs; h++ {
				seed := uint64(h) + 1
				switch variant {
				case 'A':
					go hogA(seed, &stop, results)
				case 'B':
					go hogB(seed, deadline, results)
				case 'C':
					go hogC(seed, deadline, sem, results)
				}
			}
		}
		lateness = <-probeDone
		for h := 0; h < nhogs; h++ {
			hogs = append(hogs, <-results)
		}
		return nil
	})
	if err != nil {
		return report{}, err
	}
	if len(lateness) < 2 {
		return report{}, errors.New("probe recorded no wake-ups")
	}
	wakeups := uint64(len(lateness) - 1)
	hogUnits, checksum := uint64(0), uint64(0)
	// Hog results arrive in completion order; XOR makes the checksum independent of it.
	for _, h := range hogs {
		hogUnits += h.units
		checksum ^= h.x
	}
	sort.Slice(lateness, func(i, j int) bool { return lateness[i] < lateness[j] })
	extra := [][2]string{
		{"duration_ms", strconv.FormatInt(duration.Milliseconds(), 10)},
		{"hogs", strconv.Itoa(len(hogs))},
		{"lateness_us_p50", us(percentile(lateness, 500))},
		{"lateness_us_p99", us(percentile(lateness, 990))},
		{"lateness_us_p999", us(percentile(lateness, 999))},
		{"lateness_us_max", us(lateness[len(lateness)-1])},
		{"wakeups", strconv.FormatUint(wakeups, 10)},
		{"hog_units", strconv.FormatUint(hogUnits, 10)},
	}
	return report{elapsed: elapsed, units: wakeups, check: fmt.Sprintf("%016x", checksum), extra: extra}, nil
}

// 10. sync_*: Tokio's benches/sync_mpsc.rs, sync_mpsc_oneshot.rs,
// sync_notify.rs and sync_semaphore.rs, and TooManyCooks' channel benchmark,
// with Go's own primitives (WORKLOADS.md, section 10): channels for mpsc,
// oneshot and the semaphores, a 1-buffered channel for notify_one and
// sync.Cond (with a sync.Mutex) for notify_waiters. One run repeats the Tokio
// bench's iteration *Iters times; every iteration's result is checked.
const (
	mpscSenders          = 5
	mpscPerSender        = 1_000
	mpscMsgs             = mpscSenders * mpscPerSender // 5,000 per iteration
	mpscContentionSum    = mpscSenders * (mpscPerSender * (mpscPerSender - 1) / 2)
	mpscUncontendedSum   = mpscMsgs * (mpscMsgs - 1) / 2
	mpscBigCapacity      = 1_000_000
	mpscSmallCapacity    = 100
	mpscIters            = 200
	requestReplyPerIter  = 1_000
	requestReplyIters    = 100
	requestReplyCapacity = 10
	notifyWaiterTasks    = 100
	notifyPerIter        = 500
	notifyIters          = 200
	semAcquiresPerIter   = 6
	semUncontendedIters  = 100_000
	semConcurrentIters   = 20_000
	semEnoughPermits     = 10
	semScarcePermits     = 5
	tmcItems             = 1_000_000
	tmcCapacity          = 1_024
	tmcSum               = tmcItems * (tmcItems - 1) / 2
)

// mpscCapacity: Go has no unbounded channel; the "unbounded" variants use a
// buffer as large as one iteration's values, so a send never blocks there.
func mpscCapacity(kind byte) int {
	switch kind {
	case 'B':
		return mpscBigCapacity
	case 'S':
		return mpscSmallCapacity
	}
	return mpscMsgs
}

// recvSum receives exactly n values (none may be missing) and sums them.
func recvSum(ch <-chan uint64, n int) (uint64, error) {
	sum := uint64(0)
	for i := 0; i < n; i++ {
		v, ok := <-ch
		if !ok {
			return 0, fmt.Errorf("channel ended after %d values", i)
		}
		sum += v
	}
	return sum, nil
}

// contention/{bounded,bounded_full,unbounded}: 5 goroutines x 1,000 values,
// received by the root goroutine. uncontented/{bounded,unbounded}: the root
// goroutine sends 5,000 values, then receives them.
func syncMpsc(kind byte, contended bool) (report, error) {
	want := uint64(mpscUncontendedSum)
	if contended {
		want = mpscContentionSum
	}
	elapsed, err := inRoot(func() error {
		for it := 0; it < mpscIters; it++ {
			ch := make(chan uint64, mpscCapacity(kind))
			if contended {
				for s := 0; s < mpscSenders; s++ {
					go func() {
						for i := uint64(0); i < mpscPerSender; i++ {
							ch <- i
						}
					}()
				}
			} else {
				for i := uint64(0); i < mpscMsgs; i++ {
					ch <- i
				}
			}
			sum, err := recvSum(ch, mpscMsgs)
			if err == nil {
				err = expectEq("sum of one iteration's values", sum, want)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return report{elapsed: elapsed, units: mpscIters * mpscMsgs, check: strconv.FormatUint(want, 10)}, err
}

// request_reply (sync_mpsc_oneshot.rs): a server goroutine answers requests
// that carry a reply channel (buffer 1: Go's oneshot); the root goroutine
// does the round trips one by one. The server replies with its running
// request count, so every reply is checked.
func syncOneshotRequestReply() (report, error) {
	var served uint64
	elapsed, err := inRoot(func() error {
		requests := make(chan chan uint64, requestReplyCapacity)
		done := make(chan uint64, 1)
		go func() {
			n := uint64(0)
			for reply := range requests {
				n++
				reply <- n
			}
			done <- n
		}()
		expected := uint64(0)
		for it := 0; it < requestReplyIters; it++ {
			for i := 0; i < requestReplyPerIter; i++ {
				reply := make(chan uint64, 1)
				requests <- reply
				expected++
				if err := expectEq("reply", <-reply, expected); err != nil {
					close(requests)
					return err
				}
			}
		}
		close(requests) // the server's range ends
		served = <-done
		return expectEq("requests served", served, expected)
	})
	return report{elapsed: elapsed, units: requestReplyIters * requestReplyPerIter, check: strconv.FormatUint(served, 10)}, err
}

// sync_notify.rs: 100 waiter goroutines loop on "notified" and count; the
// main goroutine notifies in a busy loop until 500 notifications were
// counted since the iteration began. notify_one: a 1-buffered channel, sent
// to without blocking (a stored permit, at most one, like Tokio's
// notify_one). notify_waiters: sync.Cond.Broadcast (wakes the goroutines
// waiting now, stores nothing). Unlike the Tokio and Pulse main threads, the
// main goroutine takes one of the GOMAXPROCS Ps while it notifies.
func syncNotify(all bool) (report, error) {
	var counter, exited int64
	var stop int32
	permit := make(chan struct{}, 1)
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	results := make(chan uint64, notifyWaiterTasks)
	for i := 0; i < notifyWaiterTasks; i++ {
		go func() {
			mine := uint64(0)
			for {
				if all {
					mu.Lock()
					cond.Wait()
					mu.Unlock()
				} else {
					<-permit
				}
				if atomic.LoadInt32(&stop) != 0 {
					break
				}
				atomic.AddInt64(&counter, 1)
				mine++
			}
			atomic.AddInt64(&exited, 1)
			results <- mine
		}()
	}
	notifyOne := func() {
		select {
		case permit <- struct{}{}:
		default:
		}
	}
	calls := uint64(0)
	start := time.Now()
	for it := 0; it < notifyIters; it++ {
		atomic.StoreInt64(&counter, 0)
		for {
			if all {
				cond.Broadcast()
			} else {
				notifyOne()
			}
			calls++
			if atomic.LoadInt64(&counter) >= notifyPerIter {
				break
			}
		}
	}
	elapsed := time.Since(start)
	atomic.StoreInt32(&stop, 1)
	for atomic.LoadInt64(&exited) < notifyWaiterTasks {
		cond.Broadcast()
		notifyOne()
		runtime.Gosched()
	}
	woken := uint64(0)
	for i := 0; i < notifyWaiterTasks; i++ {
		woken += <-results
	}
	// Every iteration counted >= 500 since its start; notify_one wakes at
	// most one goroutine per call (or stores one permit), Broadcast every
	// waiter.
	want := uint64(notifyIters * notifyPerIter)
	bound := calls
	if all {
		bound = calls * notifyWaiterTasks
	}
	var err error
	if woken < want {
		err = fmt.Errorf("wake-ups counted %d < %d", woken, want)
	} else if woken > bound {
		err = fmt.Errorf("wake-ups counted %d > possible %d", woken, bound)
	}
	return report{elapsed: elapsed, units: want, check: strconv.FormatUint(woken, 10)}, err
}

// sync_semaphore.rs uncontended: 6 sequential acquire + release in one
// goroutine; the semaphore is a channel with 10 slots (send = acquire,
// receive = release).
func syncSemaphoreUncontended() (report, error) {
	n := uint64(0)
	elapsed, err := inRoot(func() error {
		sem := make(chan struct{}, semEnoughPermits)
		for it := 0; it < semUncontendedIters; it++ {
			for i := 0; i < semAcquiresPerIter; i++ {
				sem <- struct{}{}
				<-sem
				n++
			}
		}
		return expectEq("permits after the run", semEnoughPermits-len(sem), semEnoughPermits)
	})
	if err == nil {
		err = expectEq("acquires", n, uint64(semUncontendedIters*semAcquiresPerIter))
	}
	return report{elapsed: elapsed, units: n, check: strconv.FormatUint(n, 10)}, err
}

// uncontended_concurrent / contended_concurrent: 6 goroutines joined with a
// WaitGroup, each acquiring and releasing once; 10 slots (enough) or 5 (one
// goroutine waits). Each counts the holders while it holds its slot, so a
// semaphore that let more than `permits` in would be caught.
func syncSemaphoreConcurrent(permits int) (report, error) {
	n := uint64(0)
	elapsed, err := inRoot(func() error {
		sem := make(chan struct{}, permits)
		var holders, tooMany int64
		var wg sync.WaitGroup
		for it := 0; it < semConcurrentIters; it++ {
			wg.Add(semAcquiresPerIter)
			for i := 0; i < semAcquiresPerIter; i++ {
				go func() {
					sem <- struct{}{}
					if atomic.AddInt64(&holders, 1) > int64(permits) {
						atomic.AddInt64(&tooMany, 1)
					}
					atomic.AddInt64(&holders, -1)
					<-sem
					wg.Done()
				}()
			}
			wg.Wait()
			n += semAcquiresPerIter
		}
		return firstErr(
			expectEq("holders above the permit count", atomic.LoadInt64(&tooMany), 0),
			expectEq("permits after the run", permits-len(sem), permits))
	})
	if err == nil {
		err = expectEq("acquires", n, uint64(semConcurrentIters*semAcquiresPerIter))
	}
	return report{elapsed: elapsed, units: n, check: strconv.FormatUint(n, 10)}, err
}

// TooManyCooks' channel benchmark at a size for 2 cores: 1,000,000 values
// through one channel with buffer 1,024; producers = consumers = GOMAXPROCS.
func syncChannelTmc(workers int) (report, error) {
	var count, sum uint64
	elapsed, err := inRoot(func() error {
		ch := make(chan uint64, tmcCapacity)
		type countSum struct{ count, sum uint64 }
		results := make(chan countSum, workers)
		for c := 0; c < workers; c++ {
			go func() {
				var r countSum
				for v := range ch {
					r.count++
					r.sum += v
				}
				results <- r
			}()
		}
		var producers sync.WaitGroup
		n := uint64(workers)
		producers.Add(workers)
		for p := uint64(0); p < n; p++ {
			from, to := tmcItems*p/n, tmcItems*(p+1)/n
			go func() {
				for i := from; i < to; i++ {
					ch <- i
				}
				producers.Done()
			}()
		}
		producers.Wait()
		close(ch) // the consumers' range ends once drained
		for c := 0; c < workers; c++ {
			r := <-results
			count += r.count
			sum += r.sum
		}
		return nil
	})
	if err == nil {
		err = firstErr(expectEq("values received", count, uint64(tmcItems)),
			expectEq("sum of values", sum, uint64(tmcSum)))
	}
	return report{elapsed: elapsed, units: tmcItems, check: strconv.FormatUint(sum, 10)}, err
}

func runSync(workload string, workers int) (report, error) {
	switch workload {
	case "sync_mpsc_contention_bounded":
		return syncMpsc('B', true)
	case "sync_mpsc_contention_bounded_full":
		return syncMpsc('S', true)
	case "sync_mpsc_contention_unbounded":
		return syncMpsc('U', true)
	case "sync_mpsc_uncontended_bounded":
		return syncMpsc('B', false)
	case "sync_mpsc_uncontended_unbounded":
		return syncMpsc('U', false)
	case "sync_oneshot_request_reply":
		return syncOneshotRequestReply()
	case "sync_notify_one":
		return syncNotify(false)
	case "sync_notify_waiters":
		return syncNotify(true)
	case "sync_semaphore_uncontended":
		return syncSemaphoreUncontended()
	case "sync_semaphore_uncontended_concurrent":
		return syncSemaphoreConcurrent(semEnoughPermits)
	case "sync_semaphore_contended_concurrent":
		return syncSemaphoreConcurrent(semScarcePermits)
	case "sync_channel_tmc":
		return syncChannelTmc(workers)
	}
	return report{}, fmt.Errorf("unknown workload %q", workload)
}

var workloads = []string{
	"spawn_many_remote_idle", "spawn_many_local", "yield_many", "ping_pong",
	"chained_spawn", "skynet", "fib", "starve_none", "starve_A", "starve_B", "starve_C",
	"sync_mpsc_contention_bounded", "sync_mpsc_contention_bounded_full",
	"sync_mpsc_contention_unbounded", "sync_mpsc_uncontended_bounded",
	"sync_mpsc_uncontended_unbounded", "sync_oneshot_request_reply",
	"sync_notify_one", "sync_notify_waiters", "sync_semaphore_uncontended",
	"sync_semaphore_uncontended_concurrent", "sync_semaphore_contended_concurrent",
	"sync_channel_tmc",
}

func run(workload string, duration time.Duration, workers int) (report, error) {
	if strings.HasPrefix(workload, "sync_") {
		if _, err := runSync(workload, workers); err != nil { // untimed warm-up, result checked too
			return report{}, err
		}
		return runSync(workload, workers)
	}
	var f func() (report, error)
	switch workload {
	case "spawn_many_remote_idle":
		f = spawnManyRemoteIdle
	case "spawn_many_local":
		f = spawnManyLocal
	case "yield_many":
		f = yieldMany
	case "ping_pong":
		f = pingPong
	case "chained_spawn":
		f = chainedSpawn
	case "skynet":
		f = skynetWorkload
	case "fib":
		f = fibWorkload
	case "starve_none":
		return starve(0, duration)
	case "starve_A":
		return starve('A', duration)
	case "starve_B":
		return starve('B', duration)
	case "starve_C":
		return starve('C', duration)
	default:
		return report{}, fmt.Errorf("unknown workload %q", workload)
	}
	if _, err := f(); err != nil { // untimed warm-up, result checked too
		return report{}, err
	}
	return f()
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: go_compare <workload> [--workers N] [--duration-ms MS]\nworkloads: %s\n",
		strings.Join(workloads, " "))
	os.Exit(2)
}

func main() {
	workload := ""
	workers := defaultWorkers
	durationMs := 2000
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case (a == "--workers" || a == "--duration-ms") && i+1 < len(args):
			v, err := strconv.Atoi(args[i+1])
			if err != nil || v <= 0 {
				usage()
			}
			if a == "--workers" {
				workers = v
			} else {
				durationMs = v
			}
			i++
		case !strings.HasPrefix(a, "-") && workload == "":
			workload = a
		default:
			usage()
		}
	}
	known := false
	for _, w := range workloads {
		known = known || w == workload
	}
	if !known {
		usage()
	}
	runtime.GOMAXPROCS(workers)
	r, err := run(workload, time.Duration(durationMs)*time.Millisecond, workers)
	if err != nil {
		printErr(workload, workers, err.Error())
		os.Exit(1)
	}
	printOK(workload, workers, r)
}
