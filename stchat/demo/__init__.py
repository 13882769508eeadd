"""The demo world and the embedded demo model (issue #9).

* :mod:`stchat.demo.world` -- seeded synthetic clips of coloured shapes with exact ground truth (what the
  demo model understands: colours red, green, blue, yellow, white, black, purple, orange; shapes ball,
  square, triangle; moving left/right/up/down or standing still; 0-3 distractors of other colours; flat,
  gradient or blocky-noise backgrounds; 240p-1080p, 16:9/4:3/1:1/9:16, 12-30 fps, 3-30 s, H.264);
* :mod:`stchat.demo.text` -- queries, captions and answers in the released model's grammar;
* :mod:`stchat.demo.build` -- the untrained official-format checkpoint (small BPE tokenizer with the
  official token layout, small Qwen2 LLM, SigLIP-architecture tower, projector, LAPE, packer, tables);
* :mod:`stchat.demo.data` / :mod:`stchat.demo.bench` -- training set and held-out benchmark;
* ``stchat/demo/model/`` -- the trained model shipped as package data (``--model demo``; the default
  without a big enough GPU, see :mod:`stchat.model.choice`).

Reproduce: ``bash scripts/train_demo.sh`` (``python -m stchat.demo --help`` for the single steps).
"""
