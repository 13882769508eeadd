"""stchat web app. Run ``python app.py --help``; the code is in ``stchat/ui/``."""

import sys

from stchat.ui.launch import main

if __name__ == "__main__":
    sys.exit(main())
