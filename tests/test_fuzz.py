"""Parsers and the engine against truncated, empty, binary and malformed input: nothing escapes."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmhost import preflight
from llmhost.checks import STATUSES
from llmhost.hostio import SnapshotHost
from llmhost.parsers import ParseError, nvsmi, system, topo
from llmhost.parsers.pci import parse_lspci

from conftest import BASE_FILES, REAL, sysfs_gpu, write_snapshot

FIXTURES = {p.name: p.read_text() for p in REAL.iterdir() if p.suffix in (".xml", ".txt")}
TEXT_PARSERS = [nvsmi.parse, topo.parse, parse_lspci, system.meminfo, system.cpu_flags, system.loaded_modules,
                system.selected, system.cpulist, system.xids, system.secure_boot, system.dkms_status,
                system.df_bytes, system.apt_periodic, lambda t: system.limit(t, "Max locked memory")]
junk = st.one_of(st.text(max_size=400), st.binary(max_size=400).map(lambda b: b.decode("latin-1")))


@settings(max_examples=150, deadline=None)
@given(text=junk)
def test_parsers_raise_only_parse_error(text):
    for parse in TEXT_PARSERS:
        try:
            parse(text)
        except ParseError:
            pass


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(FIXTURES)), cut=st.floats(min_value=0, max_value=1))
def test_truncated_real_outputs(name, cut):
    text = FIXTURES[name][: int(len(FIXTURES[name]) * cut)]
    for parse in (nvsmi.parse, topo.parse, parse_lspci):
        try:
            parse(text)
        except ParseError:
            pass


file_junk = st.one_of(st.just(""), st.binary(max_size=200), st.text(max_size=200).map(str.encode))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.fixed_dictionaries({path: file_junk for path in list(BASE_FILES) + list(sysfs_gpu("0000:01:00.0", "2330"))}),
       smi_cut=st.floats(min_value=0, max_value=1), rc=st.sampled_from([0, 1, 9, 127]))
def test_engine_survives_garbage_everywhere(tmp_path_factory, files, smi_cut, rc):
    xml = FIXTURES["nvsmi-a100-sxm4-80gb-mig-535.54.03.xml"]
    root = write_snapshot(tmp_path_factory.mktemp("junk"), files=files, base=False,
                          cmds={"nvidia-smi-q-x": (xml[: int(len(xml) * smi_cut)], "\x00\xff", rc),
                                "kernel-log": ("NVRM: Xid (PCI:zz): x", "", 0), "nvml": ("{not json", "", 0),
                                "dkms-status": ("\x00:::", "", 0), "lspci-vvv": ("\t\tBAR 1: current size: ?", "", 0)})
    report = preflight.run(SnapshotHost(root))
    assert report.results
    for result in report.results:
        assert result.status in STATUSES
        assert isinstance(result.message, str) and result.message
        # An exception inside a check is a bug, even though the engine contains it.
        assert "could not be evaluated" not in result.message, (result.id, result.message)
