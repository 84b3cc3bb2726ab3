from promptlab.cli import entry

entry()
