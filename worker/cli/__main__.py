"""`python -m worker.cli ...`, as the `checkin` script."""

from worker.cli.main import main

main()
