// The host files NVIDIA's code reads besides NVML, provided in a private mount namespace so that nothing on the
// machine changes: /proc/driver/nvidia-caps/mig-minors (the device plugin maps each MIG device to its capability
// device nodes through it; internal/mig/mig-dp.go) and /sys/bus/pci/devices (GFD reads each GPU's PCI class for
// nvidia.com/gpu.mode through go-nvlib nvpci, and the vGPU labeler scans the bus).
//
// The harness re-executes itself in a new mount namespace (as root: CLONE_NEWNS; otherwise also a user namespace
// that maps the caller to root), makes every mount private there, and bind-mounts a temporary folder over
// /proc/driver and another over /sys/bus/pci/devices. The mounts die with the process.
//
// One more file only saves time: go-nvlib's nvpci parses a pci.ids database on every device lookup (GFD looks up
// each GPU's PCI class on every labelling), 1.5 MB when it falls back to its built-in copy. A pci.ids naming just
// the case's devices is mounted over the first pci.ids folder it searches (pciids.go defaultPCIdbPaths); the names
// only go into log lines, never into labels or resources.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

const innerEnv = "MIG_CONFORMANCE_DIFFTEST_INNER"

// host is the temporary folder behind the two mounts.
type host struct {
	dir             string
	pci             string
	machineTypeFile string
	migMinors       string
	pciIDs          string
	how             string
}

// reexecPrivate runs this program again in a private mount namespace and exits with its status. It returns only
// in the inner process (or with noNamespace).
func reexecPrivate(noNamespace bool) (string, error) {
	if noNamespace {
		return "none (--no-namespace: the machine's own /proc/driver and /sys/bus/pci are read)", nil
	}
	if os.Getenv(innerEnv) != "" {
		return os.Getenv(innerEnv), nil
	}
	how := "mount namespace (CLONE_NEWNS, as root)"
	attrs := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() != 0 {
		how = "user + mount namespace (CLONE_NEWUSER|CLONE_NEWNS, caller mapped to root)"
		attrs.Cloneflags |= syscall.CLONE_NEWUSER
		attrs.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attrs.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		attrs.GidMappingsEnableSetgroups = false
	}
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("cannot find this program to re-execute it: %w", err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), innerEnv+"="+how)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = attrs
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			os.Exit(exit.ExitCode())
		}
		return "", fmt.Errorf("cannot start a private mount namespace (%s): %w", how, err)
	}
	os.Exit(0)
	return "", nil
}

// migMinors is a mig-minors file as the driver writes it for a node of `gpus` GPUs: every GPU minor, GI ID 0..14
// and CI ID 0..7 ("config N", "monitor N", "gpuG/giI/access N", "gpuG/giI/ciC/access N"; MIG User Guide,
// "/dev based nvidia-capabilities").
func migMinors(gpus int) string {
	var b strings.Builder
	b.WriteString("config 1\nmonitor 2\n")
	minor := 3
	for gpu := 0; gpu < gpus; gpu++ {
		for gi := 0; gi < 15; gi++ {
			fmt.Fprintf(&b, "gpu%d/gi%d/access %d\n", gpu, gi, minor)
			minor++
			for ci := 0; ci < 8; ci++ {
				fmt.Fprintf(&b, "gpu%d/gi%d/ci%d/access %d\n", gpu, gi, ci, minor)
				minor++
			}
		}
	}
	return b.String()
}

// setupHost creates the folder and, unless mounts are off, mounts it over the two host paths.
func setupHost(how string, mount bool) (*host, error) {
	dir, err := os.MkdirTemp("", "mig-conformance-difftest-")
	if err != nil {
		return nil, err
	}
	h := &host{dir: dir, pci: filepath.Join(dir, "pci"), machineTypeFile: filepath.Join(dir, "product_name"),
		migMinors: filepath.Join(dir, "driver", "nvidia-caps", "mig-minors"),
		pciIDs:    filepath.Join(dir, "pciids", "pci.ids"), how: how}
	for _, d := range []string{filepath.Dir(h.migMinors), h.pci, filepath.Dir(h.pciIDs)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(h.machineTypeFile, []byte("mig-conformance-difftest\n"), 0o644); err != nil {
		return nil, err
	}
	if !mount {
		return h, nil
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("making mounts private: %w", err)
	}
	mounts := map[string]string{filepath.Join(dir, "driver"): "/proc/driver", h.pci: "/sys/bus/pci/devices"}
	for _, d := range pciIDsFolders {
		if info, err := os.Stat(d); err == nil && info.IsDir() {
			mounts[filepath.Dir(h.pciIDs)] = d
			break
		}
	}
	for src, dst := range mounts {
		if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
			return nil, fmt.Errorf("bind-mounting %s over %s: %w", src, dst, err)
		}
	}
	return h, nil
}

// pciIDsFolders: the folders of go-nvlib's pci.ids search path (pkg/pciids/pciids.go, v0.7.4), in its order,
// leaving out /usr/share itself (time zones and more live there).
var pciIDsFolders = []string{"/usr/share/misc", "/usr/local/share", "/usr/share/hwdata"}

func (h *host) close() {
	_ = os.RemoveAll(h.dir)
}

// writeHost writes the case's mig-minors file and PCI bus: for each GPU NVIDIA's vendor ID, its device ID, class
// 0x030200 (3D controller, as data-center GPUs report), no NUMA node, no capabilities in config space (no vGPU).
func (h *host) writeHost(c *Case) error {
	if err := os.WriteFile(h.migMinors, []byte(migMinors(len(c.GPUs))), 0o644); err != nil {
		return err
	}
	ids := "10de  NVIDIA Corporation\n"
	named := map[uint32]bool{}
	for _, g := range c.GPUs {
		if !named[g.PciDeviceID>>16] {
			named[g.PciDeviceID>>16] = true
			ids += fmt.Sprintf("\t%04x  %s\n", g.PciDeviceID>>16, g.Name)
		}
	}
	ids += "C 03  Display controller\n\t00  VGA compatible controller\n\t02  3D controller\n"
	if err := os.WriteFile(h.pciIDs, []byte(ids), 0o644); err != nil {
		return err
	}
	entries, err := os.ReadDir(h.pci)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(h.pci, e.Name())); err != nil {
			return err
		}
	}
	for i, g := range c.GPUs {
		dev := filepath.Join(h.pci, sysfsAddress(i))
		if err := os.MkdirAll(dev, 0o755); err != nil {
			return err
		}
		deviceID := g.PciDeviceID >> 16
		config := make([]byte, 256)
		config[0], config[1] = 0xde, 0x10
		config[2], config[3] = byte(deviceID), byte(deviceID>>8)
		config[0x0a], config[0x0b] = 0x02, 0x03
		files := map[string]string{
			"vendor":    "0x10de\n",
			"device":    fmt.Sprintf("0x%04x\n", deviceID),
			"class":     "0x030200\n",
			"numa_node": "-1\n",
			"resource":  "0x0000000000000000 0x0000000000000000 0x0000000000000000\n",
			"config":    string(config),
		}
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dev, name), []byte(text), 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}
