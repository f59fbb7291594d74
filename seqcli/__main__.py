"""python -m seqcli"""

from seqcli.cli import main

main()
