import sys

from ceal_pipeline.cli import main

sys.exit(main())
