"""Build the ICD-10-CM linker of the bulk benchmark (GloVe 6B 50-d, 100k words, untrained CNN mapper).

python -m benchmarks._children.bulk_build_linker OUT_DIR
"""

import sys


def build(out_dir: str) -> None:
    from spacy_text2node import Taxonomy
    from spacy_text2node.linker_api import build_linker_nlp
    from spacy_text2node.vectors.io import glove_6b_50d
    from spacy_text2node.vectors.pipeline import build_vectors_pipeline

    words, matrix = glove_6b_50d(max_words=100_000)
    vec = build_vectors_pipeline(words, matrix, subwords=None)
    nlp = build_linker_nlp(Taxonomy.from_icd10cm(), None, vec, spans="ents", architecture="cnn")
    nlp.to_disk(out_dir)


if __name__ == "__main__":
    build(sys.argv[1])
