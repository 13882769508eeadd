"""``python -m stchat.ui``: same as ``python app.py``."""

import sys

from stchat.ui.launch import main

sys.exit(main())
