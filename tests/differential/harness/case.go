// mig-conformance differential harness: the case format it reads and the result format it writes.
//
// A case is one node (its GPUs, each with the catalog's profile table and a MIG layout) under one MIG strategy.
// The Python side (tests/support/difftest_cases.py) writes the cases from the kit's catalog; this program serves
// them through a mock NVML and runs NVIDIA's own device-plugin and GFD code on it.
package main

// Input is the whole document the harness reads: a list of cases.
type Input struct {
	Cases []Case `json:"cases"`
}

// Case is one node under one strategy.
type Case struct {
	ID                string `json:"id"`
	Strategy          string `json:"strategy"`
	Driver            string `json:"driver"`
	CudaDriverVersion int    `json:"cuda_driver_version"`
	// GFDRuns: how often the labelers run (Go map order decides some labels on nodes with several GPU models).
	GFDRuns int   `json:"gfd_runs"`
	GPUs    []GPU `json:"gpus"`
}

// GPU is one board: what NVML reports for it, its profile table and the MIG layout to apply.
type GPU struct {
	Name                  string        `json:"name"`
	PciDeviceID           uint32        `json:"pci_device_id"`
	MemoryMiB             uint64        `json:"memory_mib"`
	CudaComputeCapability [2]int        `json:"cuda_compute_capability"`
	MigCapable            bool          `json:"mig_capable"`
	MigEnabled            bool          `json:"mig_enabled"`
	MaxMigDevices         int           `json:"max_mig_devices"`
	GIProfiles            []GIProfile   `json:"gi_profiles"`
	GPUInstances          []GPUInstance `json:"gpu_instances"`
}

// GIProfile is one row of the profile table, as nvmlDeviceGetGpuInstanceProfileInfo reports it at Index.
type GIProfile struct {
	Index           int         `json:"index"`
	ID              uint32      `json:"id"`
	SliceCount      uint32      `json:"slice_count"`
	InstanceCount   uint32      `json:"instance_count"`
	Multiprocessors uint32      `json:"multiprocessors"`
	CopyEngines     uint32      `json:"copy_engines"`
	Decoders        uint32      `json:"decoders"`
	Encoders        uint32      `json:"encoders"`
	Jpeg            uint32      `json:"jpeg"`
	Ofa             uint32      `json:"ofa"`
	MemoryMiB       uint64      `json:"memory_mib"`
	P2P             bool        `json:"p2p"`
	Placements      []Placement `json:"placements"`
	CIProfiles      []CIProfile `json:"ci_profiles"`
}

// CIProfile is a compute-instance profile inside a GPU instance of its GI profile (NVML index = Index).
type CIProfile struct {
	Index           int         `json:"index"`
	ID              uint32      `json:"id"`
	SliceCount      uint32      `json:"slice_count"`
	InstanceCount   uint32      `json:"instance_count"`
	Multiprocessors uint32      `json:"multiprocessors"`
	Placements      []Placement `json:"placements"`
}

// Placement is a start and size in memory slots (GI) or compute slices inside the GI (CI).
type Placement struct {
	Start uint32 `json:"start"`
	Size  uint32 `json:"size"`
}

// GPUInstance is one GI of the layout: its NVML ID, profile (by NVML index), placement start and CIs.
type GPUInstance struct {
	ID               uint32            `json:"id"`
	ProfileIndex     int               `json:"profile_index"`
	Start            uint32            `json:"start"`
	ComputeInstances []ComputeInstance `json:"compute_instances"`
}

// ComputeInstance is one CI of a GI: its ID, CI profile (by NVML index) and placement start inside the GI.
type ComputeInstance struct {
	ID           uint32 `json:"id"`
	ProfileIndex int    `json:"profile_index"`
	Start        uint32 `json:"start"`
}

// Result is what NVIDIA's code made of one case.
type Result struct {
	ID           string       `json:"id"`
	DevicePlugin PluginResult `json:"device_plugin"`
	GFD          GFDResult    `json:"gfd"`
	// HarnessError: the case could not be set up (a bad case or a mock gap), so nothing was compared.
	HarnessError string `json:"harness_error,omitempty"`
}

// PluginResult holds the resources the plugin would register (name -> devices), or the error it exits with.
type PluginResult struct {
	Resources map[string]int `json:"resources"`
	Error     *string        `json:"error"`
	Warnings  []string       `json:"warnings"`
}

// GFDResult holds the labels of the first run, and every value a label took when runs disagreed.
type GFDResult struct {
	Labels   map[string]string   `json:"labels"`
	Variants map[string][]string `json:"variants"`
	Error    *string             `json:"error"`
	Warnings []string            `json:"warnings"`
}
