"""The `kallos` command line: thin wrappers that parse, load settings and call the library."""
