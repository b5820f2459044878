"""``python -m dynamo_planner``: the same as the ``dynamo-planner`` command."""

from dynamo_planner.cli import main

raise SystemExit(main())
