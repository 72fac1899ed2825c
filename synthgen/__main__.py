from synthgen.interface.cli import entry

entry()
