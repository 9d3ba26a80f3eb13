// A mock NVML node built from a case: go-nvml's generated mock types (pkg/nvml/mock) filled in the way go-nvml's
// DGX mock servers fill them (a server holding devices, devices holding GPU instances, GPU instances holding compute
// instances), with the case's profile table instead of the DGX mocks' built-in one, and with the MIG device handles
// the DGX mocks leave out (the device plugin and GFD walk them).
package main

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/google/uuid"
)

const mib = 1024 * 1024

// uuidSpace makes device UUIDs stable per case (name-based UUIDs of the case ID and position).
var uuidSpace = uuid.MustParse("6d1b0f2e-6a4f-4f38-9a55-3f3c0c6f1c11")

type server struct {
	mock.Interface
	ext     mock.ExtendedInterface
	driver  string
	cuda    int
	devices []*gpuDevice
}

type gpuDevice struct {
	mock.Device
	sync.Mutex
	index   int
	spec    *GPU
	uuid    string
	busID   string
	migMode int
	gis     map[uint32]*gpuInstance
	// giIDs: the GI ID NVML gives a placement (profile index, start), from the case's layout
	giIDs map[[2]int]uint32
	migs  map[[2]uint32]*migDevice
}

type gpuInstance struct {
	mock.GpuInstance
	sync.Mutex
	dev       *gpuDevice
	id        uint32
	profile   *GIProfile
	placement nvml.GpuInstancePlacement
	cis       map[uint32]*computeInstance
	// ciIDs: the CI ID for a CI placement (profile index, start), from the case's layout
	ciIDs map[[2]int]uint32
}

type computeInstance struct {
	mock.ComputeInstance
	gi        *gpuInstance
	id        uint32
	profile   *CIProfile
	placement nvml.ComputeInstancePlacement
}

type migDevice struct {
	mock.Device
	parent *gpuDevice
	gi     *gpuInstance
	ci     *computeInstance
	uuid   string
}

var (
	_ nvml.Interface       = (*server)(nil)
	_ nvml.Device          = (*gpuDevice)(nil)
	_ nvml.Device          = (*migDevice)(nil)
	_ nvml.GpuInstance     = (*gpuInstance)(nil)
	_ nvml.ComputeInstance = (*computeInstance)(nil)
)

// newServer builds the node of a case with MIG modes set and no instances yet (applyLayout creates them).
func newServer(c *Case) *server {
	s := &server{driver: c.Driver, cuda: c.CudaDriverVersion}
	for i := range c.GPUs {
		g := &c.GPUs[i]
		d := &gpuDevice{
			index: i,
			spec:  g,
			uuid:  "GPU-" + uuid.NewSHA1(uuidSpace, []byte(fmt.Sprintf("%s/gpu%d", c.ID, i))).String(),
			busID: busID(i),
			gis:   map[uint32]*gpuInstance{},
			giIDs: map[[2]int]uint32{},
			migs:  map[[2]uint32]*migDevice{},
		}
		for _, gi := range g.GPUInstances {
			d.giIDs[[2]int{gi.ProfileIndex, int(gi.Start)}] = gi.ID
		}
		d.setFuncs(s)
		s.devices = append(s.devices, d)
	}
	s.setFuncs()
	return s
}

// busID is the PCI address NVML reports (8-digit domain), one bus per GPU.
func busID(i int) string {
	return fmt.Sprintf("00000000:%02X:00.0", 0x10*(i+1))
}

// sysfsAddress is the same address as sysfs names it (4-digit domain, lower case), as go-nvlib derives it.
func sysfsAddress(i int) string {
	return strings.ToLower(strings.TrimPrefix(busID(i), "0000"))
}

func (s *server) setFuncs() {
	s.ext.LookupSymbolFunc = func(string) error { return nil } // a current driver: every symbol exists
	s.ExtensionsFunc = func() nvml.ExtendedInterface { return &s.ext }
	s.InitFunc = func() nvml.Return { return nvml.SUCCESS }
	s.ShutdownFunc = func() nvml.Return { return nvml.SUCCESS }
	s.SystemGetDriverVersionFunc = func() (string, nvml.Return) { return s.driver, nvml.SUCCESS }
	s.SystemGetNVMLVersionFunc = func() (string, nvml.Return) { return "12." + s.driver, nvml.SUCCESS }
	s.SystemGetCudaDriverVersionFunc = func() (int, nvml.Return) { return s.cuda, nvml.SUCCESS }
	s.DeviceGetCountFunc = func() (int, nvml.Return) { return len(s.devices), nvml.SUCCESS }
	s.DeviceGetHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i < 0 || i >= len(s.devices) {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		return s.devices[i], nvml.SUCCESS
	}
	s.DeviceGetHandleByUUIDFunc = func(id string) (nvml.Device, nvml.Return) {
		for _, d := range s.devices {
			if d.uuid == id {
				return d, nvml.SUCCESS
			}
			for _, m := range d.migDevices() {
				if m.uuid == id {
					return m, nvml.SUCCESS
				}
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	s.DeviceGetHandleByPciBusIdFunc = func(bus string) (nvml.Device, nvml.Return) {
		for _, d := range s.devices {
			if strings.EqualFold(d.busID, bus) {
				return d, nvml.SUCCESS
			}
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
}

func toInt8(s string, out []int8) {
	for i := 0; i < len(s) && i < len(out)-1; i++ {
		out[i] = int8(s[i])
	}
}

func (d *gpuDevice) profileByIndex(i int) *GIProfile {
	for k := range d.spec.GIProfiles {
		if d.spec.GIProfiles[k].Index == i {
			return &d.spec.GIProfiles[k]
		}
	}
	return nil
}

func (d *gpuDevice) profileByID(id uint32) *GIProfile {
	for k := range d.spec.GIProfiles {
		if d.spec.GIProfiles[k].ID == id {
			return &d.spec.GIProfiles[k]
		}
	}
	return nil
}

func profileInfo(p *GIProfile) nvml.GpuInstanceProfileInfo {
	p2p := uint32(0)
	if p.P2P {
		p2p = 1
	}
	return nvml.GpuInstanceProfileInfo{
		Id: p.ID, IsP2pSupported: p2p, SliceCount: p.SliceCount, InstanceCount: p.InstanceCount,
		MultiprocessorCount: p.Multiprocessors, CopyEngineCount: p.CopyEngines, DecoderCount: p.Decoders,
		EncoderCount: p.Encoders, JpegCount: p.Jpeg, OfaCount: p.Ofa, MemorySizeMB: p.MemoryMiB,
	}
}

// migDevices lists the MIG devices in NVML's handle order: by GI ID, then CI ID.
func (d *gpuDevice) migDevices() []*migDevice {
	d.Lock()
	defer d.Unlock()
	var gis []*gpuInstance
	for _, gi := range d.gis {
		gis = append(gis, gi)
	}
	sort.Slice(gis, func(a, b int) bool { return gis[a].id < gis[b].id })
	var out []*migDevice
	for _, gi := range gis {
		var cis []*computeInstance
		for _, ci := range gi.cis {
			cis = append(cis, ci)
		}
		sort.Slice(cis, func(a, b int) bool { return cis[a].id < cis[b].id })
		for _, ci := range cis {
			key := [2]uint32{gi.id, ci.id}
			m, ok := d.migs[key]
			if !ok {
				m = newMigDevice(d, gi, ci)
				d.migs[key] = m
			}
			out = append(out, m)
		}
	}
	return out
}

func (d *gpuDevice) setFuncs(s *server) {
	g := d.spec
	d.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return false, nvml.SUCCESS }
	d.GetNameFunc = func() (string, nvml.Return) { return g.Name, nvml.SUCCESS }
	d.GetUUIDFunc = func() (string, nvml.Return) { return d.uuid, nvml.SUCCESS }
	d.GetIndexFunc = func() (int, nvml.Return) { return d.index, nvml.SUCCESS }
	d.GetMinorNumberFunc = func() (int, nvml.Return) { return d.index, nvml.SUCCESS }
	d.GetBrandFunc = func() (nvml.BrandType, nvml.Return) { return nvml.BRAND_NVIDIA, nvml.SUCCESS }
	d.GetPciInfoFunc = func() (nvml.PciInfo, nvml.Return) {
		info := nvml.PciInfo{Bus: uint32(0x10 * (d.index + 1)), PciDeviceId: g.PciDeviceID, PciSubSystemId: 0x10de}
		toInt8(d.busID, info.BusId[:])
		toInt8(d.busID[4:], info.BusIdLegacy[:])
		return info, nvml.SUCCESS
	}
	d.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: g.MemoryMiB * mib, Free: g.MemoryMiB * mib}, nvml.SUCCESS
	}
	d.GetCudaComputeCapabilityFunc = func() (int, int, nvml.Return) {
		return g.CudaComputeCapability[0], g.CudaComputeCapability[1], nvml.SUCCESS
	}
	d.GetAttributesFunc = func() (nvml.DeviceAttributes, nvml.Return) {
		return nvml.DeviceAttributes{}, nvml.ERROR_NOT_SUPPORTED // full GPUs (nvml.h)
	}
	d.GetGpuFabricInfoFunc = func() (nvml.GpuFabricInfo, nvml.Return) {
		return nvml.GpuFabricInfo{}, nvml.ERROR_NOT_SUPPORTED // no NVLink fabric (IMEX) in these cases
	}
	d.GetMigModeFunc = func() (int, int, nvml.Return) {
		if !g.MigCapable {
			return 0, 0, nvml.ERROR_NOT_SUPPORTED
		}
		return d.migMode, d.migMode, nvml.SUCCESS
	}
	d.SetMigModeFunc = func(mode int) (nvml.Return, nvml.Return) {
		if !g.MigCapable {
			return nvml.ERROR_NOT_SUPPORTED, nvml.ERROR_NOT_SUPPORTED
		}
		d.migMode = mode
		return nvml.SUCCESS, nvml.SUCCESS
	}
	// "Returns zero if MIG is not supported or enabled" (nvml.h, nvmlDeviceGetMaxMigDeviceCount).
	d.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) {
		if !g.MigCapable || d.migMode != nvml.DEVICE_MIG_ENABLE {
			return 0, nvml.SUCCESS
		}
		return g.MaxMigDevices, nvml.SUCCESS
	}
	d.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if !g.MigCapable || d.migMode != nvml.DEVICE_MIG_ENABLE {
			return nil, nvml.ERROR_NOT_SUPPORTED
		}
		if i < 0 || i >= g.MaxMigDevices {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		migs := d.migDevices()
		if i >= len(migs) {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return migs[i], nvml.SUCCESS
	}
	d.GetGpuInstanceProfileInfoFunc = func(i int) (nvml.GpuInstanceProfileInfo, nvml.Return) {
		if i < 0 || i >= nvml.GPU_INSTANCE_PROFILE_COUNT {
			return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_INVALID_ARGUMENT
		}
		p := d.profileByIndex(i)
		if !g.MigCapable || p == nil {
			return nvml.GpuInstanceProfileInfo{}, nvml.ERROR_NOT_SUPPORTED
		}
		return profileInfo(p), nvml.SUCCESS
	}
	d.GetGpuInstancePossiblePlacementsFunc = func(info *nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstancePlacement, nvml.Return) {
		p := d.profileByID(info.Id)
		if p == nil {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		var out []nvml.GpuInstancePlacement
		for _, pl := range p.Placements {
			out = append(out, nvml.GpuInstancePlacement{Start: pl.Start, Size: pl.Size})
		}
		return out, nvml.SUCCESS
	}
	d.CreateGpuInstanceWithPlacementFunc = func(info *nvml.GpuInstanceProfileInfo, pl *nvml.GpuInstancePlacement) (nvml.GpuInstance, nvml.Return) {
		return d.createGpuInstance(info, pl)
	}
	d.GetGpuInstancesFunc = func(info *nvml.GpuInstanceProfileInfo) ([]nvml.GpuInstance, nvml.Return) {
		d.Lock()
		defer d.Unlock()
		var out []nvml.GpuInstance
		for _, gi := range sortedGIs(d.gis) {
			if gi.profile.ID == info.Id {
				out = append(out, gi)
			}
		}
		return out, nvml.SUCCESS
	}
	d.GetGpuInstanceByIdFunc = func(id int) (nvml.GpuInstance, nvml.Return) {
		d.Lock()
		defer d.Unlock()
		gi, ok := d.gis[uint32(id)]
		if !ok {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return gi, nvml.SUCCESS
	}
}

func sortedGIs(gis map[uint32]*gpuInstance) []*gpuInstance {
	var out []*gpuInstance
	for _, gi := range gis {
		out = append(out, gi)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].id < out[b].id })
	return out
}

// createGpuInstance checks what NVML checks (MIG enabled, a placement of the profile, no overlap, the profile's
// instance count) and takes the GI ID the case gives that placement.
func (d *gpuDevice) createGpuInstance(info *nvml.GpuInstanceProfileInfo, pl *nvml.GpuInstancePlacement) (nvml.GpuInstance, nvml.Return) {
	d.Lock()
	defer d.Unlock()
	if d.migMode != nvml.DEVICE_MIG_ENABLE {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	p := d.profileByID(info.Id)
	if p == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	valid := false
	for _, q := range p.Placements {
		valid = valid || (q.Start == pl.Start && q.Size == pl.Size)
	}
	if !valid {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	same := uint32(0)
	for _, gi := range d.gis {
		if gi.profile.ID == p.ID {
			same++
		}
		if pl.Start < gi.placement.Start+gi.placement.Size && gi.placement.Start < pl.Start+pl.Size {
			return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
		}
	}
	if same >= p.InstanceCount {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	id, ok := d.giIDs[[2]int{p.Index, int(pl.Start)}]
	if !ok {
		return nil, nvml.ERROR_UNKNOWN
	}
	if _, taken := d.gis[id]; taken {
		return nil, nvml.ERROR_UNKNOWN
	}
	gi := &gpuInstance{dev: d, id: id, profile: p, placement: *pl, cis: map[uint32]*computeInstance{},
		ciIDs: map[[2]int]uint32{}}
	for _, want := range d.spec.GPUInstances {
		if want.ID == id {
			for _, ci := range want.ComputeInstances {
				gi.ciIDs[[2]int{ci.ProfileIndex, int(ci.Start)}] = ci.ID
			}
		}
	}
	gi.setFuncs()
	d.gis[id] = gi
	return gi, nvml.SUCCESS
}

func (gi *gpuInstance) ciProfile(index int) *CIProfile {
	for k := range gi.profile.CIProfiles {
		if gi.profile.CIProfiles[k].Index == index {
			return &gi.profile.CIProfiles[k]
		}
	}
	return nil
}

func (gi *gpuInstance) ciProfileByID(id uint32) *CIProfile {
	for k := range gi.profile.CIProfiles {
		if gi.profile.CIProfiles[k].ID == id {
			return &gi.profile.CIProfiles[k]
		}
	}
	return nil
}

// ciInfo: a CI profile's NVML info; its shared engines are the GI's (CIs of one GI share the GI's engines).
func (gi *gpuInstance) ciInfo(c *CIProfile) nvml.ComputeInstanceProfileInfo {
	p := gi.profile
	return nvml.ComputeInstanceProfileInfo{
		Id: c.ID, SliceCount: c.SliceCount, InstanceCount: c.InstanceCount, MultiprocessorCount: c.Multiprocessors,
		SharedCopyEngineCount: p.CopyEngines, SharedDecoderCount: p.Decoders, SharedEncoderCount: p.Encoders,
		SharedJpegCount: p.Jpeg, SharedOfaCount: p.Ofa,
	}
}

func (gi *gpuInstance) setFuncs() {
	gi.GetInfoFunc = func() (nvml.GpuInstanceInfo, nvml.Return) {
		return nvml.GpuInstanceInfo{Device: gi.dev, Id: gi.id, ProfileId: gi.profile.ID, Placement: gi.placement},
			nvml.SUCCESS
	}
	gi.GetComputeInstanceProfileInfoFunc = func(profile int, engProfile int) (nvml.ComputeInstanceProfileInfo, nvml.Return) {
		if profile < 0 || profile >= nvml.COMPUTE_INSTANCE_PROFILE_COUNT {
			return nvml.ComputeInstanceProfileInfo{}, nvml.ERROR_INVALID_ARGUMENT
		}
		if engProfile < 0 || engProfile >= nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_COUNT {
			return nvml.ComputeInstanceProfileInfo{}, nvml.ERROR_INVALID_ARGUMENT
		}
		c := gi.ciProfile(profile)
		if c == nil {
			return nvml.ComputeInstanceProfileInfo{}, nvml.ERROR_NOT_SUPPORTED
		}
		return gi.ciInfo(c), nvml.SUCCESS
	}
	gi.GetComputeInstancePossiblePlacementsFunc = func(info *nvml.ComputeInstanceProfileInfo) ([]nvml.ComputeInstancePlacement, nvml.Return) {
		c := gi.ciProfileByID(info.Id)
		if c == nil {
			return nil, nvml.ERROR_INVALID_ARGUMENT
		}
		var out []nvml.ComputeInstancePlacement
		for _, pl := range c.Placements {
			out = append(out, nvml.ComputeInstancePlacement{Start: pl.Start, Size: pl.Size})
		}
		return out, nvml.SUCCESS
	}
	gi.CreateComputeInstanceWithPlacementFunc = func(info *nvml.ComputeInstanceProfileInfo, pl *nvml.ComputeInstancePlacement) (nvml.ComputeInstance, nvml.Return) {
		return gi.createComputeInstance(info, pl)
	}
	gi.GetComputeInstancesFunc = func(info *nvml.ComputeInstanceProfileInfo) ([]nvml.ComputeInstance, nvml.Return) {
		gi.Lock()
		defer gi.Unlock()
		var out []nvml.ComputeInstance
		for _, ci := range gi.cis {
			if ci.profile.ID == info.Id {
				out = append(out, ci)
			}
		}
		sort.Slice(out, func(a, b int) bool { return out[a].(*computeInstance).id < out[b].(*computeInstance).id })
		return out, nvml.SUCCESS
	}
	gi.GetComputeInstanceByIdFunc = func(id int) (nvml.ComputeInstance, nvml.Return) {
		gi.Lock()
		defer gi.Unlock()
		ci, ok := gi.cis[uint32(id)]
		if !ok {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return ci, nvml.SUCCESS
	}
}

func (gi *gpuInstance) createComputeInstance(info *nvml.ComputeInstanceProfileInfo, pl *nvml.ComputeInstancePlacement) (nvml.ComputeInstance, nvml.Return) {
	gi.Lock()
	defer gi.Unlock()
	c := gi.ciProfileByID(info.Id)
	if c == nil {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	if pl.Start+pl.Size > gi.profile.SliceCount || pl.Size != c.SliceCount {
		return nil, nvml.ERROR_INVALID_ARGUMENT
	}
	same := uint32(0)
	for _, ci := range gi.cis {
		if ci.profile.ID == c.ID {
			same++
		}
		if pl.Start < ci.placement.Start+ci.placement.Size && ci.placement.Start < pl.Start+pl.Size {
			return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
		}
	}
	if same >= c.InstanceCount {
		return nil, nvml.ERROR_INSUFFICIENT_RESOURCES
	}
	id, ok := gi.ciIDs[[2]int{c.Index, int(pl.Start)}]
	if !ok {
		return nil, nvml.ERROR_UNKNOWN
	}
	ci := &computeInstance{gi: gi, id: id, profile: c, placement: *pl}
	ci.GetInfoFunc = func() (nvml.ComputeInstanceInfo, nvml.Return) {
		return nvml.ComputeInstanceInfo{Device: gi.dev, GpuInstance: gi, Id: ci.id, ProfileId: c.ID,
			Placement: ci.placement}, nvml.SUCCESS
	}
	gi.cis[id] = ci
	return ci, nvml.SUCCESS
}

func newMigDevice(d *gpuDevice, gi *gpuInstance, ci *computeInstance) *migDevice {
	m := &migDevice{parent: d, gi: gi, ci: ci}
	m.uuid = "MIG-" + uuid.NewSHA1(uuidSpace, []byte(fmt.Sprintf("%s/gi%d/ci%d", d.uuid, gi.id, ci.id))).String()
	m.IsMigDeviceHandleFunc = func() (bool, nvml.Return) { return true, nvml.SUCCESS }
	m.GetDeviceHandleFromMigDeviceHandleFunc = func() (nvml.Device, nvml.Return) { return d, nvml.SUCCESS }
	m.GetUUIDFunc = func() (string, nvml.Return) { return m.uuid, nvml.SUCCESS }
	m.GetGpuInstanceIdFunc = func() (int, nvml.Return) { return int(gi.id), nvml.SUCCESS }
	m.GetComputeInstanceIdFunc = func() (int, nvml.Return) { return int(ci.id), nvml.SUCCESS }
	m.GetCudaComputeCapabilityFunc = d.GetCudaComputeCapabilityFunc
	m.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: gi.profile.MemoryMiB * mib, Free: gi.profile.MemoryMiB * mib}, nvml.SUCCESS
	}
	// nvmlDeviceGetAttributes of a MIG device: the CI's SMs and slices, the GI's slices, memory and engines.
	m.GetAttributesFunc = func() (nvml.DeviceAttributes, nvml.Return) {
		p := gi.profile
		return nvml.DeviceAttributes{
			MultiprocessorCount: ci.profile.Multiprocessors, SharedCopyEngineCount: p.CopyEngines,
			SharedDecoderCount: p.Decoders, SharedEncoderCount: p.Encoders, SharedJpegCount: p.Jpeg,
			SharedOfaCount: p.Ofa, GpuInstanceSliceCount: p.SliceCount,
			ComputeInstanceSliceCount: ci.profile.SliceCount, MemorySizeMB: p.MemoryMiB,
		}, nvml.SUCCESS
	}
	return m
}

// applyLayout sets each GPU's MIG mode and creates its GPU and compute instances through the mock's NVML calls,
// in the case's order, the way mig-parted does (CreateGpuInstanceWithPlacement, then the GI's CIs).
func applyLayout(s *server) error {
	for _, d := range s.devices {
		g := d.spec
		if !g.MigCapable {
			if g.MigEnabled || len(g.GPUInstances) > 0 {
				return fmt.Errorf("GPU %d (%s) is not MIG-capable but the case enables MIG on it", d.index, g.Name)
			}
			continue
		}
		mode := nvml.DEVICE_MIG_DISABLE
		if g.MigEnabled {
			mode = nvml.DEVICE_MIG_ENABLE
		}
		if ret, _ := d.SetMigMode(mode); ret != nvml.SUCCESS {
			return fmt.Errorf("GPU %d: SetMigMode(%d): %v", d.index, mode, ret.Error())
		}
		for _, want := range g.GPUInstances {
			info, ret := d.GetGpuInstanceProfileInfo(want.ProfileIndex)
			if ret != nvml.SUCCESS {
				return fmt.Errorf("GPU %d: no GI profile at index %d: %v", d.index, want.ProfileIndex, ret.Error())
			}
			size := uint32(0)
			for _, pl := range d.profileByIndex(want.ProfileIndex).Placements {
				if pl.Start == want.Start {
					size = pl.Size
				}
			}
			gi, ret := d.CreateGpuInstanceWithPlacement(&info, &nvml.GpuInstancePlacement{Start: want.Start, Size: size})
			if ret != nvml.SUCCESS {
				return fmt.Errorf("GPU %d: creating GI %d (profile index %d at %d): %v", d.index, want.ID,
					want.ProfileIndex, want.Start, ret.Error())
			}
			for _, wantCI := range want.ComputeInstances {
				ciInfo, ret := gi.GetComputeInstanceProfileInfo(wantCI.ProfileIndex, nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED)
				if ret != nvml.SUCCESS {
					return fmt.Errorf("GPU %d GI %d: no CI profile at index %d: %v", d.index, want.ID,
						wantCI.ProfileIndex, ret.Error())
				}
				pl := nvml.ComputeInstancePlacement{Start: wantCI.Start, Size: ciInfo.SliceCount}
				if _, ret := gi.CreateComputeInstanceWithPlacement(&ciInfo, &pl); ret != nvml.SUCCESS {
					return fmt.Errorf("GPU %d GI %d: creating CI %d (profile index %d at %d): %v", d.index, want.ID,
						wantCI.ID, wantCI.ProfileIndex, wantCI.Start, ret.Error())
				}
			}
		}
	}
	return nil
}
