"""Document pipeline on NCBI Disease dev: mention finders side by side in front of one trained linker.

    python -m benchmarks documents [--ner DIR] [--linker DIR] [--n-docs 1000] [--skip speed,package]

Every contender links with the same CTD MEDIC `text2node_linker` (the NCBI pipeline of
`python -m benchmarks linker --settings NCBI`, trained on NCBI train mentions and MEDIC
names and synonyms) and is scored by `document_scores` on the 100 dev abstracts:

* ner                 our disease NER (configs/ner_disease.cfg, trained on NCBI train, the
                      linker's word vectors), abbreviations resolved (`text2node_abbreviations`
                      with mentions), coordinations widened (`text2node_coordinations`),
                      composite mentions split (configs/documents.cfg)
* ner, plain          the same NER, no abbreviations, no coordination widening, no composite splitting
* ner + matcher       the NER's mentions plus taxonomy PhraseMatcher mentions that overlap none
* noun chunks         en_core_web_sm's noun chunks (configs/clinical_noun_chunks.cfg's mention finder)
* phrase matcher      exact lookup of MEDIC names and synonyms (an entity_ruler on LOWER:
                      the QuickUMLS-style dictionary baseline)
* gold mentions       the linker on the gold spans: its ceiling, and linking accuracy alone
                      (as saved: no NIL cut for an unclear best concept)

The peers' linker leaves a span NIL below the document config's `min_probability`, as the
document pipeline's does.

Then the document pipeline's speed and peak RSS on MTSamples notes, `text2node link` with
1 and 2 processes, with and without the linker (benchmarks/bench_bulk.py's runner), and the
pipeline packaged with `spacy package`, pip-installed into a folder and loaded by name in a
fresh interpreter: its records must equal the trained pipeline's.
Results: a table and benchmarks/results/documents.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

if not __package__:  # run as `python benchmarks/bench_documents.py`: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO, RESULTS, peak_rss_mb, run_meta, saved_component_cfg, script_prog, write_results  # noqa: E402

NAME = "documents"
PIPELINES = RESULTS / "pipelines"
DEFAULT_LINKER = PIPELINES / "NCBI-cnn-node2vec_text"
DEFAULT_NER = PIPELINES / "ner_ncbi"
DOCUMENTS = PIPELINES / "documents_ncbi"
SHARED = Path(os.environ.get("TEXT2NODE_SHARED_DATA", REPO.parent / "shared" / "data"))
SCORES = (
    "text2node_mention_p",
    "text2node_mention_r",
    "text2node_mention_f",
    "text2node_link_p",
    "text2node_link_r",
    "text2node_link_f",
    "text2node_link_acc_found",
    "text2node_doc_concept_f",
)


def ncbi_file(split: str) -> Path:
    from spacy_text2node.datasets.ncbi import NCBI_FILES

    path = SHARED / "ncbi_disease" / NCBI_FILES[split]
    if not path.exists():
        raise SystemExit(f"{path} is absent: this benchmark needs the shared NCBI Disease corpus.")
    return path


def ensure_linker(path: Path) -> Path:
    """The NCBI linker pipeline; trained by the linker benchmark when absent."""
    if (path / "config.cfg").exists():
        return path
    if path != DEFAULT_LINKER:
        raise SystemExit(f"{path}: no pipeline here (no config.cfg).")
    cmd = [sys.executable, "-m", "benchmarks", "linker", "--settings", "NCBI", "--only", "linker"]
    cmd += ["--variants", "cnn:node2vec+text", "--epochs", "5"]
    cmd += ["--out", str(RESULTS / "linker_ncbi_for_documents.json")]
    print("training the NCBI linker:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    return path


def ensure_ner(path: Path, linker: Path) -> Path:
    """The disease NER; trained with `spacy train configs/ner_disease.cfg` on the linker's
    word vectors when absent (model-best, chosen on NCBI dev)."""
    if (path / "config.cfg").exists():
        return path
    out = path.parent / (path.name + "_training")
    cmd = [sys.executable, "-m", "spacy", "train", str(REPO / "configs" / "ner_disease.cfg"), "--output", str(out)]
    cmd += ["--paths.train", str(ncbi_file("train")), "--paths.dev", str(ncbi_file("dev"))]
    cmd += ["--paths.vectors", str(linker)]
    print("training the NER:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, check=True)
    shutil.copytree(out / "model-best", path)
    return path


def document_pipeline(ner: Path, linker: Path, out: Path) -> Path:
    """configs/documents.cfg (documents_trf.cfg for a transformer NER) assembled with
    `text2node assemble`, saved to `out`."""
    from spacy_text2node.bulk.clinical import documents_config_name

    cmd = ["text2node", "assemble", str(REPO / "configs" / documents_config_name(ner)), str(out)]
    cmd += ["--paths.ner", str(ner), "--paths.linker", str(linker)]
    subprocess.run(cmd, cwd=REPO, check=True)
    return out


# accuracy -----------------------------------------------------------------------------
def contenders(documents: Path, linker: Path) -> Dict[str, Any]:
    """Builders of the contenders' pipelines, by name."""
    import spacy

    from spacy_text2node.bulk.clinical import build_clinical_pipeline

    def ner() -> Any:
        return spacy.load(documents)

    def ner_plain() -> Any:
        nlp = spacy.load(documents, exclude=["text2node_abbreviations", "text2node_coordinations"])
        linker_: Any = nlp.get_pipe("text2node_linker")
        linker_.cfg["composite"] = False
        return nlp

    def ner_matcher() -> Any:
        nlp = spacy.load(documents)
        linker_: Any = nlp.get_pipe("text2node_linker")
        tax = linker_.taxonomy
        from spacy_text2node.bulk.clinical import taxonomy_patterns

        ruler: Any = nlp.add_pipe(
            "entity_ruler", config={"phrase_matcher_attr": "LOWER", "overwrite_ents": False}, after="ner"
        )
        ruler.add_patterns(taxonomy_patterns(tax, label="Disease"))
        return nlp

    # the peers' mentions go to the linker with the document pipeline's NIL cut too (read
    # from the settings its linker was saved with, without loading the pipeline again)
    min_probability = saved_component_cfg(documents, "text2node_linker").get("min_probability", 0.0)

    def peer(mentions: str) -> Any:
        nlp = build_clinical_pipeline(spacy.load(linker), mentions=mentions)
        theirs: Any = nlp.get_pipe("text2node_linker")
        theirs.cfg["min_probability"] = min_probability
        return nlp

    def noun_chunks() -> Any:
        return peer("noun_chunks")

    def matcher() -> Any:
        return peer("ruler")

    return {
        "ner": ner,
        "ner, plain": ner_plain,
        "ner + matcher": ner_matcher,
        "noun chunks": noun_chunks,
        "phrase matcher": matcher,
        "gold mentions": None,
    }


def score_contender(name: str, build: Any, linker: Path, split: str) -> Dict[str, Any]:
    import spacy

    from spacy_text2node.pipeline.scoring import document_scores
    from spacy_text2node.readers.linking import PubTatorCorpus

    t0 = time.perf_counter()
    if build is None:  # gold mentions: the linker alone on the reference spans
        from spacy_text2node.bulk.clinical import link_mentions

        nlp = spacy.load(linker)
        link_mentions(nlp, "ents")
    else:
        nlp = build()
    load_s = time.perf_counter() - t0
    medic = SHARED / "ctd_medic" / "CTD_diseases.tsv.gz"
    examples = list(PubTatorCorpus(ncbi_file(split), taxonomy_path=medic)(nlp))
    t0 = time.perf_counter()
    if build is None:
        for eg in examples:
            pred = eg.predicted
            spans = [pred.char_span(e.start_char, e.end_char, label=e.label_) for e in eg.reference.ents]
            pred.ents = [s for s in spans if s is not None]
        docs = [nlp.get_pipe("text2node_linker")(eg.predicted) for eg in examples]
    else:
        docs = list(nlp.pipe(eg.reference.text for eg in examples))
    secs = time.perf_counter() - t0
    from spacy.training import Example

    scores = document_scores([Example(d, eg.reference) for d, eg in zip(docs, examples)])
    return {**scores, "docs": len(examples), "pipe_s": secs, "load_s": load_s, "pipeline": nlp.pipe_names}


# speed and package --------------------------------------------------------------------
def speed(documents: Path, n_docs: int, batch_size: int) -> Dict[str, Any]:
    import spacy

    from benchmarks.bench_bulk import run_contender

    notes = SHARED / "mtsamples" / "mtsamples.csv.gz"
    if not notes.exists():
        raise SystemExit(f"{notes} is absent: the speed runs need the shared MTSamples notes.")
    no_linker = PIPELINES / "documents_ncbi_no_linker"
    # the coordinations read the linker's names: they go with it
    nlp = spacy.load(documents, exclude=["text2node_linker", "text2node_coordinations"])
    nlp.to_disk(no_linker)
    common = ["--id-field", "note_id", "--text-field", "transcription", "--batch-size", str(batch_size)]
    runs = [
        ("mentions n1", no_linker, "1"),
        ("mentions n2", no_linker, "2"),
        ("linked n1", documents, "1"),
        ("linked n2", documents, "2"),
    ]
    out: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        for name, model, n in runs:
            target = tmp / (name.replace(" ", "_") + ".jsonl")
            argv = [str(model), str(notes), str(target), *common, "-n", n, "--limit", str(n_docs)]
            print(f"running {name} on {n_docs} notes ...", flush=True)
            r = run_contender(argv, tmp, name.replace(" ", "_"))
            recs = [json.loads(line) for line in target.read_text().splitlines()]
            r["n_spans"] = sum(len(x["spans"]) for x in recs)
            r["n_negated"] = sum(1 for x in recs for s in x["spans"] if s.get("negated"))
            r["command"] = "text2node link " + " ".join(argv)
            out[name] = r
    return out


def _records(nlp: Any, texts: List[str]) -> List[Any]:
    from spacy_text2node.bulk.records import doc_to_record

    return [doc_to_record(doc, str(i)) for i, doc in enumerate(nlp.pipe(texts))]


def package_check(documents: Path, texts: List[str]) -> Dict[str, Any]:
    """spacy package + pip install --target + spacy.load(name) in a fresh interpreter."""
    import spacy

    name, version = "text2node_ncbi_documents", "0.0.0"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        (tmp / "pkg").mkdir()
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "spacy", "package", str(documents), str(tmp / "pkg"), "--name", name]
            + ["--version", version, "--force"],
            check=True,
            capture_output=True,
        )
        sdist = next((tmp / "pkg").rglob("*.tar.gz"))
        site = tmp / "site"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(site)]
            + [str(sdist)],
            check=True,
            capture_output=True,
        )
        package_s = time.perf_counter() - t0
        (tmp / "texts.json").write_text(json.dumps(texts))
        code = (
            "import json, sys, spacy\n"
            "from spacy_text2node.bulk.records import doc_to_record\n"
            f"nlp = spacy.load('en_{name}')\n"
            f"texts = json.load(open({str(tmp / 'texts.json')!r}))\n"
            "recs = [doc_to_record(d, str(i)) for i, d in enumerate(nlp.pipe(texts))]\n"
            "print(json.dumps({'file': nlp.path and str(nlp.path), 'records': recs}))\n"
        )
        env = {**os.environ, "PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp)
        if proc.returncode != 0:
            return {"loaded": False, "error": proc.stderr[-2000:]}
        fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    mine = _records(spacy.load(documents), texts)
    return {
        "package": f"en_{name}-{version}",
        "loaded": True,
        "loaded_from": fresh["file"],
        "docs": len(texts),
        "identical": fresh["records"] == mine,
        "package_and_install_s": package_s,
    }


def fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    prog = prog or script_prog(__file__)
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--linker", type=Path, default=DEFAULT_LINKER, help="the NCBI text2node_linker pipeline")
    ap.add_argument("--ner", type=Path, default=DEFAULT_NER, help="the disease NER pipeline (trained when absent)")
    ap.add_argument("--split", default="dev", choices=["train", "dev"], help="NCBI split to score on")
    ap.add_argument("--only", default="", help="comma-separated contenders to run (default: all)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: speed, package")
    ap.add_argument("--n-docs", type=int, default=1000, help="MTSamples notes for the speed runs")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--out", type=Path, default=RESULTS / "documents.json")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    linker = ensure_linker(args.linker.resolve())
    ner = ensure_ner(args.ner.resolve(), linker)
    documents = document_pipeline(ner, linker, DOCUMENTS)
    results: Dict[str, Any] = {}
    wanted = set(filter(None, args.only.split(",")))
    for name, build in contenders(documents, linker).items():
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        results[name] = score_contender(name, build, linker, args.split)
        print(json.dumps({k: results[name].get(k) for k in SCORES}), flush=True)
    heads = "".join(f"{k.replace('text2node_', ''):>12}" for k in SCORES)
    print(f"\nNCBI Disease {args.split}: {'contender':<16}{heads}")
    for name, r in results.items():
        print(f"{'':>19}{name:<16}" + "".join(f"{fmt(r.get(k)):>12}" for k in SCORES))
    summary: Dict[str, Any] = {}
    if "speed" not in skip:
        summary["speed"] = sp = speed(documents, args.n_docs, args.batch_size)
        print(f"\n{'run':<12} {'docs':>5} {'docs/s':>7} {'spans':>7} {'negated':>7} {'peak RSS MB (proc / tree)':>26}")
        for name, r in sp.items():
            rss = f"{r['peak_process_rss_mb']:.0f} / {r['peak_tree_rss_mb']:.0f}"
            print(
                f"{name:<12} {r['n_written']:>5} {r['docs_per_second']:>7.2f} {r['n_spans']:>7} "
                f"{r['n_negated']:>7} {rss:>26}"
            )
        for n in ("1", "2"):
            a, b = sp.get(f"mentions n{n}"), sp.get(f"linked n{n}")
            if a and b:
                summary[f"linker_time_ratio_n{n}"] = a["docs_per_second"] / b["docs_per_second"]
                ratio = summary[f"linker_time_ratio_n{n}"]
                print(f"with / without the linker, {n} process(es): x{ratio:.2f} time per doc")
    meta = run_meta(prog, argv, linker=str(linker), ner=str(ner))
    write_results(args.out, {"meta": meta, "results": results, "summary": summary})  # kept if the package step fails
    if "package" not in skip:
        from spacy_text2node.datasets.pubtator import read_pubtator

        texts = [d.text for d in read_pubtator(ncbi_file(args.split))][:25]
        summary["package"] = pk = package_check(documents, texts)
        print(f"\npackaged pipeline: {json.dumps(pk)}")
    meta["peak_rss_mb"] = peak_rss_mb()
    print(f"-> {write_results(args.out, {'meta': meta, 'results': results, 'summary': summary})}")


if __name__ == "__main__":
    main()
