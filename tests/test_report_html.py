"""`pbft report`: a played run as one self-contained HTML file (issue 14, feature 4).

A small run is played once (a fault-free transfer set, then a SmallBank set whose leader crashes
while n7 is disconnected, so that it changes views), its report written, and the report read
back with the standard library's HTML parser, the way a browser would see it: a section per
set, the run's outcomes in the transactions tables, a diagram per set, nothing fetched from
anywhere, and nothing from the run able to inject markup.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli import report_html, views
from cli.main import main
from pbft_core.storage import RunIndex, list_runs, set_dir

SCENARIO = """\
Set Number,Transactions,Live,Byzantine,Attack
1,"(A, B, 3)","[n1, n2, n3, n4, n5, n6, n7]",[],[]
,"(B, C, 20)",,,
,(B),,,
2,(DepositChecking(A,50)),"[n1, n2, n3, n4, n5, n6]",[n1],[crash]
,"(SendPayment(E,B,10))",,,
,(Balance(A)),,,
"""
# The scenario's path is shown in the report's summary: this one would open a script element
# if it were written into the page as it is.
CRAFTED_DIR = "<script>alert(1)<"
CRAFTED_FILE = "script>.csv"
# Elements through which a page loads something (or runs something).
LINKING_TAGS = {"script", "link", "iframe", "img", "object", "embed", "base", "frame"}


def split(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


class Page(HTMLParser):
    """What a reader of the report gets: its summary, its sections (one per set) with their
    tables and diagrams, and everything that would make the file depend on something else."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.summary: dict[str, str] = {}
        self.sections: list[dict[str, Any]] = []
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.ids: list[str] = []
        self.references: list[str] = []  # url(#x) and href="#x" inside the diagrams
        self._table: dict[str, Any] | None = None
        self._in_head = self._in_svg = False
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        for name, value in attrs:
            if value and ("http://" in value or "https://" in value):
                self.urls.append(f"{tag} {name}={value}")
            if name == "id" and value:
                self.ids.append(value)
            if self._in_svg and value and "url(#" in value:
                self.references.append(value.split("url(#", 1)[1].split(")", 1)[0])
            if self._in_svg and value and name.endswith("href") and value.startswith("#"):
                self.references.append(value[1:])
        if tag == "section" and "set" in (values.get("class") or "").split():
            self.sections.append({"set": int(values["data-set"] or 0), "svgs": 0, "tables": {}})
        elif tag == "svg":
            self._in_svg = True
            self.sections[-1]["svgs"] += 1
        elif tag == "table":
            self._table = {"class": values.get("class"), "head": [], "rows": []}
        elif tag == "thead":
            self._in_head = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg = False
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            if self._in_head:
                self._table["head"] = self._row
            else:
                self._table["rows"].append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            if self._table["class"] == "facts":  # the run's summary: label, value
                self.summary.update({label: value for label, value in self._table["rows"]})
            else:
                self.sections[-1]["tables"].setdefault(self._table["class"], []).append(self._table)
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if "http://" in data or "https://" in data:
            self.urls.append(data.strip()[:80])


@pytest.fixture(scope="module")
def played(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The run (its JSON report from `--json -`), its data directory and its HTML report."""
    root = tmp_path_factory.mktemp("report")
    scenario = root / CRAFTED_DIR / CRAFTED_FILE
    scenario.parent.mkdir()
    scenario.write_text(SCENARIO)
    data_dir = root / "data"
    code, out, err = split(
        "run", str(scenario), "--non-interactive", "--data-dir", str(data_dir), "--json", "-"
    )
    assert code == 0, err
    output = root / "report.html"
    code, _, err = split("report", "--data-dir", str(data_dir), "-o", str(output))
    assert code == 0, err
    html = output.read_text()
    return {
        "run": json.loads(out),
        "scenario": scenario,
        "data_dir": data_dir,
        "output": output,
        "html": html,
        "page": Page(html),
    }


def test_the_report_has_one_section_per_played_set_with_its_tables_and_its_diagram(
    played: dict,
) -> None:
    page: Page = played["page"]
    assert [s["set"] for s in page.sections] == [s["set"] for s in played["run"]["sets"]] == [1, 2]
    for section in page.sections:
        assert section["svgs"] == 1, section["set"]
        assert {"transactions", "replicas"} <= section["tables"].keys()


def test_the_transactions_tables_show_the_runs_outcomes_results_and_latencies(played: dict) -> None:
    page: Page = played["page"]
    for section, played_set in zip(page.sections, played["run"]["sets"], strict=True):
        (table,) = section["tables"]["transactions"]
        assert table["head"] == [
            "#",
            "line",
            "client",
            "transaction",
            "outcome",
            "result",
            "latency ms",
        ]
        shown = [(row[2], row[4].split(" ")[0], row[5], row[6]) for row in table["rows"]]
        expected = [
            (
                t["client"],
                t["outcome"],
                "-" if t["result"] is None else str(t["result"]),
                "-" if t["latency_ms"] is None else f"{t['latency_ms']:.1f}",
            )
            for t in played_set["transactions"]
        ]
        assert shown == expected
    # The transfer of 20 from B (who holds 13) is refused by every replica: a final "failed".
    first = page.sections[0]["tables"]["transactions"][0]["rows"]
    assert [row[4] for row in first] == ["committed", "failed", "committed"]


def test_the_replicas_tables_are_the_set_tables_smallbank_customers_included(played: dict) -> None:
    page: Page = played["page"]
    transfers, smallbank = (s["tables"]["replicas"][0] for s in page.sections)
    assert transfers["head"][4:] == list("ABCDEFGHIJ")
    # A SmallBank set shows savings + checking of the customers its transactions name, and
    # the money in the bank, as `pbft run` printed it.
    assert smallbank["head"][4:] == ["A", "B", "E", "money"]
    roles = {row[0]: row[1] for row in smallbank["rows"]}
    assert roles["n1"] == "byzantine: crash"
    assert roles["n7"] == "down"
    report = played["run"]["sets"][1]
    n2 = next(row for row in smallbank["rows"] if row[0] == "n2")
    assert n2[2:4] == [
        str(report["replicas"]["n2"]["view"]),
        str(report["replicas"]["n2"]["last_executed"]),
    ]


def test_the_set_whose_leader_crashed_shows_its_view_change_and_who_led_the_new_view(
    played: dict,
) -> None:
    page: Page = played["page"]
    quiet, changed = page.sections
    assert "view-changes" not in quiet["tables"] and "proposals" not in quiet["tables"]
    assert changed["tables"]["view-changes"][0]["rows"], "no view change started"
    new_views = played["run"]["sets"][1]["new_views"]
    assert new_views and new_views[0]["leader"] == "n2"
    assert len(changed["tables"]["view-change-set"]) == len(new_views)
    assert "NEW-VIEW v2 · leader n2" in played["html"]


def test_the_summary_names_the_scenario_the_date_the_versions_and_the_exit_status(
    played: dict,
) -> None:
    summary = played["page"].summary
    assert summary["scenario"] == str(played["scenario"])
    assert summary["exit status"] == "0 (finished)"
    assert summary["started"][:2] == "20"
    assert "protocol pbft/v1" in summary["report written by"]
    assert "PP" in played["html"] and "never received" in played["html"]  # the legend


def test_the_report_is_self_contained(played: dict) -> None:
    page: Page = played["page"]
    assert not LINKING_TAGS & set(page.tags)
    assert page.urls == []
    assert "http://" not in played["html"] and "https://" not in played["html"]
    # Several diagrams share the page: their ids never collide, and every reference inside a
    # diagram (clip paths, markers) finds its target.
    assert len(page.ids) == len(set(page.ids))
    assert page.references and set(page.references) <= set(page.ids)


def test_a_crafted_scenario_path_and_transaction_cell_stay_text(
    played: dict, tmp_path: Path
) -> None:
    # The path alone: written into the summary as text, never as a tag.
    assert "<script" not in played["html"]
    # A transaction cell: the run index's report is what the tables come from.
    data_dir = tmp_path / "data"
    shutil.copytree(played["data_dir"], data_dir)
    (run_dir,) = list_runs(data_dir)
    with RunIndex(run_dir) as index:
        report = index.set_report(1)
        assert report is not None
        report["transactions"][0]["client"] = "<script>alert(2)</script>"
        report["transactions"][0]["args"] = ["</td></tr></table><script>alert(3)</script>", "B", 3]
        index.record_set(report, started_at=0.0)
    code, out, _ = split("report", "--data-dir", str(data_dir), "-o", "-")
    assert code == 0
    page = Page(out)
    assert "script" not in page.tags
    (table,) = page.sections[0]["tables"]["transactions"]
    assert table["rows"][0][2] == "<script>alert(2)</script>"
    assert table["rows"][0][3].startswith("(</td></tr></table><script>alert(3)</script>, B, 3")
    assert len(table["rows"]) == 3


def test_dash_is_stdout_and_an_unusable_output_is_one_error_line(
    played: dict, tmp_path: Path
) -> None:
    data_dir = str(played["data_dir"])
    code, out, err = split("report", "--data-dir", data_dir, "-o", "-")
    assert code == 0
    assert out == played["html"]  # the same bytes: a report can be diffed
    assert "report: stdout" in err
    for output, why in (
        (tmp_path / "missing" / "r.html", "does not exist"),
        (tmp_path, "is a directory"),
    ):
        code, out, err = split("report", "--data-dir", data_dir, "-o", str(output))
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("error: -o: ") and why in err


def test_run_is_chosen_like_inspect_run(played: dict, tmp_path: Path) -> None:
    (run_dir,) = list_runs(played["data_dir"])
    data_dir = tmp_path / "data"
    for name in (run_dir.name, run_dir.name[:-2] + "zz"):
        shutil.copytree(run_dir, data_dir / "runs" / name)
    code, out, _ = split("report", run_dir.name[:-2] + "z", "--data-dir", str(data_dir), "-o", "-")
    assert code == 0 and f"pbft run {run_dir.name[:-2]}zz" in out
    code, _, err = split("report", run_dir.name[:-2], "--data-dir", str(data_dir), "-o", "-")
    assert code == 2 and err.startswith(f"error: RUN {run_dir.name[:-2]!r} is ambiguous: 2 runs")
    code, _, err = split("report", "nosuchrun", "--data-dir", str(data_dir), "-o", "-")
    assert code == 2 and err == f"error: no run 'nosuchrun' under {data_dir} (see `pbft runs`)\n"
    code, _, err = split("report", "--data-dir", str(tmp_path / "empty"), "-o", "-")
    assert code == 2 and err.startswith("error: no runs under")


def test_a_long_set_is_drawn_for_its_first_part_with_the_command_for_the_rest(
    played: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    (run_dir,) = list_runs(played["data_dir"])
    target = views.Target(set_dir(run_dir, 2), "run", run_dir.name, 2, None)
    monkeypatch.setattr(report_html, "REPORT_ARROWS_MAX", 15)
    figure = report_html.flow_html(target, duration_ms=5000.0)
    assert figure.count("<svg") == 1
    assert "Only the first" in figure
    assert f"pbft inspect flow --run {run_dir.name} --set 2 --from " in figure


# ---- a browser's view (make test-slow) ----------------------------------------------------------

BROWSERS = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def _browser() -> str | None:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.slow
@pytest.mark.skipif(_browser() is None, reason="no Chromium on this machine (/usr/bin/chromium)")
def test_a_headless_browser_draws_the_report(played: dict, tmp_path: Path) -> None:
    import matplotlib.image

    screenshot = tmp_path / "report.png"
    subprocess.run(
        [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--screenshot={screenshot}", "--window-size=1280,2400", played["output"].as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = matplotlib.image.imread(screenshot)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    # Not blank: text and tables give many shades, and a good part of the page is not white.
    assert len({tuple(p) for p in pixels[::8, ::8].reshape(-1, pixels.shape[2])}) > 20
    assert (pixels[..., :3].mean(axis=2) < 0.9).mean() > 0.02


def test_a_set_the_run_was_interrupted_in_shows_its_databases(played: dict, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    shutil.copytree(played["data_dir"], data_dir)
    (run_dir,) = list_runs(data_dir)
    with RunIndex(run_dir) as index:  # as if Ctrl-C came before set 2's report was recorded
        index.db.execute("DELETE FROM sets WHERE number = 2")
        index.db.commit()
    code, out, _ = split("report", "--data-dir", str(data_dir), "-o", "-")
    assert code == 0
    page = Page(out)
    assert [s["set"] for s in page.sections] == [1, 2]
    interrupted = page.sections[1]
    assert "transactions" not in interrupted["tables"]
    assert [row[0] for row in interrupted["tables"]["replicas"][0]["rows"]] == [
        f"n{i}" for i in range(1, 8)
    ]
    assert interrupted["svgs"] == 1
    assert "the run stopped while it played" in out
