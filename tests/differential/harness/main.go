// mig-conformance-difftest runs NVIDIA's k8s-device-plugin code (the resource managers of internal/rm and the GFD
// labelers of internal/lm) on mock NVML nodes described by JSON cases, and prints what that code made of each case
// as one JSON object per line. It is the kit's own program, built inside a writable copy of the k8s-device-plugin
// module (internal packages are importable only from inside it) by scripts/build-difftest.
//
// Usage: mig-conformance-difftest [--cases FILE] [--no-namespace] [--cpuprofile FILE]
//
//	--cases FILE     the cases ({"cases": [...]}, see case.go); default: standard input
//	--no-namespace   do not enter a private mount namespace (MIG devices then fail: no mig-minors file)
//	--cpuprofile F   write a CPU profile to F
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mig-conformance-difftest: error: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	casesPath := flag.String("cases", "-", "file with the cases (JSON); - = standard input")
	noNamespace := flag.Bool("no-namespace", false, "do not use a private mount namespace")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file (go tool pprof)")
	flag.Parse()

	how, err := reexecPrivate(*noNamespace)
	if err != nil {
		fail("%v", err)
	}
	var in io.Reader = os.Stdin
	if *casesPath != "-" {
		f, err := os.Open(*casesPath)
		if err != nil {
			fail("%v", err)
		}
		defer f.Close()
		in = f
	}
	var input Input
	if err := json.NewDecoder(in).Decode(&input); err != nil {
		fail("reading the cases: %v", err)
	}

	h, err := setupHost(how, !*noNamespace)
	if err != nil {
		fail("preparing mig-minors and the PCI bus (%s): %v", how, err)
	}
	defer h.close()
	fmt.Fprintf(os.Stderr, "mig-conformance-difftest: %d cases; host files in a private %s\n", len(input.Cases), how)

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail("%v", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail("%v", err)
		}
		defer pprof.StopCPUProfile()
	}
	logs := captureKlog()
	out := json.NewEncoder(os.Stdout)
	for i := range input.Cases {
		if err := out.Encode(runCase(&input.Cases[i], h, logs)); err != nil {
			fail("writing the result of %s: %v", input.Cases[i].ID, err)
		}
	}
}
