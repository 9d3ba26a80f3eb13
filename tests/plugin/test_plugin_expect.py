"""`mig_expect` follows a node through a run: it projects from what the node's last reconfiguration left, as the
`sim` cluster (mig-parted on simulated NVML) answers."""

from __future__ import annotations

import pytest

CONFIG = """
version: v1
mig-configs:
  ci:
    - devices: all
      mig-enabled: true
      mig-devices: {"1c.1g.10gb": 7}
  gi:
    - devices: all
      mig-enabled: true
      mig-devices: {"1g.10gb": 7}
"""


def test_expectations_depend_on_the_node_state_and_agree_with_sim(tester: pytest.Pytester) -> None:
    """After `1c.1g.10gb: 7` is applied the GPUs report seven `1g.10gb`: a config of `1g.10gb: 7` is applied
    already (success at once, no pending); labelling the value the node carries runs nothing at all."""
    tester.path.joinpath("configs.yaml").write_text(CONFIG)
    tester.makepyfile(test_sequence='''
        from pathlib import Path

        from mig_conformance.k8s import labels as L

        def test_sequence(mig_nodes, mig_cluster, mig_expect, mig_reconfigure):
            mig_cluster.set_mig_config(Path("configs.yaml").read_text())
            node = mig_nodes[0]
            seen = []
            for config in ("ci", "gi", "gi", "ci"):
                want = mig_expect(node, config, "mixed")
                got = mig_reconfigure(node, config, "mixed")
                states = tuple(got.mig_states or ())
                assert states == want.states, (config, states, want.states)
                assert got.labels[L.MIG_CONFIG_STATE] == want.state == "success"
                mig = {k: v for k, v in got.allocatable.items() if k.startswith("nvidia.com/")}
                assert mig == want.allocatable, (config, mig, want.allocatable)
                seen.append(states)
                node = got
            assert seen == [("pending", "success"), ("success",), (), ("pending", "success")]
    ''')
    result = tester.runpytest("--mig-cluster=sim:p5.48xlarge", "test_sequence.py", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
