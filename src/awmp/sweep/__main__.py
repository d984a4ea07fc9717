"""`python -m awmp.sweep ARGS`: `awmp sweep ARGS`; `python -m awmp.sweep --cell ...`: the
subprocess of one attempt (awmp.sweep.cell)."""

import sys

from awmp.sweep import _cell_main, main

if __name__ == "__main__":
    if sys.argv[1:2] == ["--cell"]:
        sys.exit(_cell_main(sys.argv[1:]))
    sys.exit(main())
