import sys

from zhengai.cli import main

sys.exit(main())
