"""stchat: find when and where something happens in a video with LLaVA-ST.

The package reads like the pipeline:
video -> processing (prompt, pixels) -> model -> parse -> render -> clip -> ui,
with eval/ and train/ beside it.
"""

__version__ = "0.1.0"
