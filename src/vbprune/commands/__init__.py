"""One module per ``vbprune`` command, each with ``add_arguments(parser)`` and
``run(args)``. A module imports only the standard library and light vbprune modules at
its top, so building the parser (``vbprune --help``) loads no torch; ``run`` imports what
the work needs."""
