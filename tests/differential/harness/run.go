// Running NVIDIA's code on a case: the device plugin's start-up (default resources, then plugin.New, which builds
// the resource managers) and GFD's labelers, as cmd/nvidia-device-plugin and cmd/gpu-feature-discovery call them.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvlib/pkg/nvlib/device"
	"github.com/NVIDIA/go-nvlib/pkg/nvlib/info"
	"k8s.io/klog/v2"

	spec "github.com/NVIDIA/k8s-device-plugin/api/config/v1"
	"github.com/NVIDIA/k8s-device-plugin/internal/lm"
	"github.com/NVIDIA/k8s-device-plugin/internal/plugin"
	"github.com/NVIDIA/k8s-device-plugin/internal/resource"
	"github.com/NVIDIA/k8s-device-plugin/internal/rm"
	"github.com/NVIDIA/k8s-device-plugin/internal/vgpu"
)

// logCapture collects klog's output, so that warnings (e.g. "device 0 has no MIG devices configured") are results.
type logCapture struct {
	sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.Lock()
	defer l.Unlock()
	return l.buf.Write(p)
}

var klogLine = regexp.MustCompile(`^([IWEF])\d{4} [0-9:.]+\s+\d+ [^\]]*\] (.*)$`)

// take returns the warning messages logged since the last call and forgets everything logged.
func (l *logCapture) take() []string {
	l.Lock()
	defer l.Unlock()
	warnings := []string{}
	scanner := bufio.NewScanner(&l.buf)
	for scanner.Scan() {
		if m := klogLine.FindStringSubmatch(scanner.Text()); m != nil && m[1] == "W" {
			warnings = append(warnings, m[2])
		}
	}
	l.buf.Reset()
	return warnings
}

func captureKlog() *logCapture {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	for k, v := range map[string]string{"logtostderr": "false", "alsologtostderr": "false", "one_output": "true",
		"stderrthreshold": "FATAL"} {
		_ = fs.Set(k, v)
	}
	l := &logCapture{}
	klog.SetOutput(l)
	return l
}

// nvmlHost answers go-nvlib's platform questions as a bare-metal NVML host does (no WSL, no Tegra).
func nvmlHost() info.PropertyExtractor {
	no := func() (bool, string) { return false, "mig-conformance difftest: not on this host" }
	return &info.PropertyExtractorMock{
		HasDXCoreFunc:             no,
		HasTegraFilesFunc:         no,
		IsTegraSystemFunc:         no,
		UsesOnlyNVGPUModuleFunc:   no,
		HasOnlyIntegratedGPUsFunc: no,
		HasNvmlFunc:               func() (bool, string) { return true, "mig-conformance difftest: mock NVML" },
	}
}

func ptr[T any](v T) *T { return &v }

// flags are the command-line defaults of both binaries (cmd/*/main.go) with the case's MIG strategy.
func flags(strategy string, h *host) spec.Flags {
	return spec.Flags{CommandLineFlags: spec.CommandLineFlags{
		MigStrategy:             ptr(strategy),
		FailOnInitError:         ptr(true),
		NvidiaDriverRoot:        ptr("/"),
		NvidiaDevRoot:           ptr("/"),
		GDSEnabled:              ptr(false),
		MOFEDEnabled:            ptr(false),
		UseNodeFeatureAPI:       ptr(false),
		DeviceDiscoveryStrategy: ptr("auto"),
		MpsRoot:                 ptr(""),
		Plugin: &spec.PluginCommandLineFlags{
			PassDeviceSpecs:     ptr(false),
			DeviceIDStrategy:    ptr(spec.DeviceIDStrategyUUID),
			CDIAnnotationPrefix: ptr(spec.DefaultCDIAnnotationPrefix),
			NvidiaCTKPath:       ptr(spec.DefaultNvidiaCTKPath),
			ContainerDriverRoot: ptr(spec.DefaultContainerDriverRoot),
		},
		GFD: &spec.GFDCommandLineFlags{
			Oneshot:         ptr(true),
			NoTimestamp:     ptr(true),
			OutputFile:      ptr(""),
			MachineTypeFile: ptr(h.machineTypeFile),
		},
	}}
}

func libs(s *server) (info.Interface, device.Interface) {
	devicelib := device.New(s)
	infolib := info.New(info.WithNvmlLib(s), info.WithDeviceLib(devicelib), info.WithPropertyExtractor(nvmlHost()))
	return infolib, devicelib
}

func errText(err error) *string {
	if err == nil {
		return nil
	}
	text := err.Error()
	return &text
}

// runPlugin: the device plugin's start-up after loading its config (main.go loadConfig, then GetPlugins).
func runPlugin(c *Case, s *server, h *host, logs *logCapture) PluginResult {
	out := PluginResult{Resources: map[string]int{}, Warnings: []string{}}
	infolib, devicelib := libs(s)
	config := &spec.Config{Version: spec.Version, Flags: flags(c.Strategy, h)}
	logs.take()
	if err := rm.AddDefaultResourcesToConfig(infolib, s, devicelib, config); err != nil {
		out.Error = errText(fmt.Errorf("unable to add default resources to config: %v", err))
		out.Warnings = logs.take()
		return out
	}
	strategies, err := spec.NewDeviceListStrategies([]string{spec.DeviceListStrategyEnvVar})
	if err != nil {
		panic(err)
	}
	plugins, err := plugin.New(infolib, s, devicelib,
		plugin.WithConfig(config),
		plugin.WithDeviceListStrategies(strategies),
		plugin.WithFailOnInitError(*config.Flags.FailOnInitError),
	)
	out.Warnings = logs.take()
	if err != nil {
		out.Error = errText(err)
		return out
	}
	// plugin.Interface does not name its resource; the resource managers plugin.New built (one plugin each) do.
	managers, err := rm.NewNVMLResourceManagers(infolib, s, devicelib, config)
	logs.take()
	if err != nil || len(managers) != len(plugins) {
		panic(fmt.Sprintf("resource managers differ between two identical constructions: %v", err))
	}
	byDevices := map[string]int{}
	for _, p := range plugins {
		byDevices[deviceKey(p.Devices())]++
	}
	for _, m := range managers {
		if byDevices[deviceKey(m.Devices())] == 0 {
			panic("a resource manager's devices match no plugin")
		}
		out.Resources[string(m.Resource())] += len(m.Devices())
	}
	return out
}

func deviceKey(devices rm.Devices) string {
	ids := devices.GetIDs()
	sort.Strings(ids)
	return strings.Join(ids, ",")
}

// runGFD: the labels gpu-feature-discovery writes (lm.NewLabelers; the timestamp labeler is left out, as with
// --no-timestamp), once per run; later runs only record labels whose value differs between runs.
func runGFD(c *Case, s *server, h *host, logs *logCapture) GFDResult {
	out := GFDResult{Labels: map[string]string{}, Variants: map[string][]string{}, Warnings: []string{}}
	infolib, devicelib := libs(s)
	config := &spec.Config{Version: spec.Version, Flags: flags(c.Strategy, h)}
	logs.take()
	manager, err := resource.NewManager(infolib, s, devicelib, config)
	if err != nil {
		out.Error = errText(err)
		out.Warnings = logs.take()
		return out
	}
	vgpul := vgpu.NewVGPULib(vgpu.NewNvidiaPCILib())
	seen := map[string]map[string]bool{}
	runs := c.GFDRuns
	if runs < 1 {
		runs = 1
	}
	for run := 0; run < runs; run++ {
		labels, err := labelOnce(manager, vgpul, config)
		if run == 0 {
			out.Warnings = logs.take()
		} else {
			logs.take()
		}
		if err != nil {
			out.Error = errText(err)
			return out
		}
		if run == 0 {
			out.Labels = labels
		}
		for k, v := range labels {
			if seen[k] == nil {
				seen[k] = map[string]bool{}
			}
			seen[k][v] = true
		}
	}
	for k, values := range seen {
		if len(values) > 1 {
			for v := range values {
				out.Variants[k] = append(out.Variants[k], v)
			}
			sort.Strings(out.Variants[k])
		}
	}
	return out
}

func labelOnce(manager resource.Manager, vgpul vgpu.Interface, config *spec.Config) (map[string]string, error) {
	labelers, err := lm.NewLabelers(manager, vgpul, config)
	if err != nil {
		return nil, err
	}
	labels, err := labelers.Labels()
	if err != nil {
		return nil, err
	}
	return labels, nil
}

// runCase sets up the node of a case and runs both components on it. A panic (go-nvml's mocks panic on a call
// the mock does not implement) becomes the case's harness error.
func runCase(c *Case, h *host, logs *logCapture) (r Result) {
	r.ID = c.ID
	defer func() {
		if p := recover(); p != nil {
			r.HarnessError = fmt.Sprintf("panic: %v", p)
		}
	}()
	if err := h.writeHost(c); err != nil {
		r.HarnessError = fmt.Sprintf("writing mig-minors and the PCI bus: %v", err)
		return r
	}
	s := newServer(c)
	if err := applyLayout(s); err != nil {
		r.HarnessError = fmt.Sprintf("applying the layout: %v", err)
		return r
	}
	r.DevicePlugin = runPlugin(c, s, h, logs)
	r.GFD = runGFD(c, s, h, logs)
	return r
}
