"""The `text2node` command line, for benchmarks that start it as a subprocess:
`python -m benchmarks._children.text2node serve MODEL ...`."""

from spacy_text2node.cli import main

if __name__ == "__main__":
    main()
