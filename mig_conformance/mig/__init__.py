"""The MIG domain split as mig-parted splits it: spec (file format), config, mode, state, device IDs."""
