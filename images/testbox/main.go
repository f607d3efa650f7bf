// Command testbox is the workload of the runtime tests: one static binary
// whose first argument picks a behaviour, so a test can ask for exactly the
// process it needs through the container's command and args.
//
//	testbox sleep             sleep until killed (the image's default)
//	testbox exit CODE         exit at once with CODE
//	testbox trap-term         on SIGTERM print "got SIGTERM" and exit 0
//	testbox ignore-term       ignore SIGTERM; only SIGKILL ends it
//	testbox alloc MiB         allocate and touch MiB of memory, then sleep
//	testbox args [ARG...]     print each argument on its own line, then sleep
//	testbox env               print the environment and the working directory, then sleep
//	testbox spam LINES        print LINES numbered lines of 100 bytes, then sleep
//	testbox tick              print a numbered line every 20ms until killed
//
// Every behaviour that "then sleeps" keeps the container running so a test
// can inspect it; output goes to stdout, which the runtime sends to the
// container's log file.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		sleep()
	}
	switch os.Args[1] {
	case "sleep":
		sleep()
	case "exit":
		os.Exit(atoi(arg(2)))
	case "trap-term":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		<-c
		fmt.Println("got SIGTERM")
		os.Exit(0)
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		sleep()
	case "alloc":
		mib := atoi(arg(2))
		var keep [][]byte
		for i := 0; i < mib; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Printf("allocated %d MiB\n", len(keep))
		sleep()
	case "args":
		for _, a := range os.Args[2:] {
			fmt.Println(a)
		}
		sleep()
	case "env":
		for _, e := range os.Environ() {
			fmt.Println(e)
		}
		wd, _ := os.Getwd()
		fmt.Println("PWD=" + wd)
		sleep()
	case "spam":
		n := atoi(arg(2))
		line := strings.Repeat("x", 92)
		for i := 0; i < n; i++ {
			fmt.Printf("%06d %s\n", i, line)
		}
		sleep()
	case "tick":
		for i := 0; ; i++ {
			fmt.Printf("tick %06d\n", i)
			time.Sleep(20 * time.Millisecond)
		}
	default:
		fmt.Fprintf(os.Stderr, "testbox: unknown behaviour %q\n", os.Args[1])
		os.Exit(2)
	}
}

func sleep() {
	// Blocking on a channel nobody writes to would trip the runtime's
	// deadlock detector once no other goroutine exists; a signal channel
	// keeps one alive.
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	for {
		<-c
	}
}

func arg(i int) string {
	if len(os.Args) <= i {
		fmt.Fprintf(os.Stderr, "testbox %s: missing argument %d\n", os.Args[1], i-1)
		os.Exit(2)
	}
	return os.Args[i]
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testbox: %q is not a number\n", s)
		os.Exit(2)
	}
	return n
}
