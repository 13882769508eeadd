"""The demo tower's pretraining (stchat.demo.tower): its per-patch targets agree with the rendered pixels,
and a pretrained tower grafted into a demo checkpoint loads through the normal path with everything else
unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stchat.demo import tower as tw
from stchat.demo.world import COLOURS, SHAPES, Scene, WorldObject, render_frame, sample_scene

SHIPPED = Path(tw.__file__).parent / "model"


def _square_scene() -> Scene:
    red = WorldObject(colour="red", shape="square", motion="still", rgb=(220, 35, 35), size=100.0, start=2,
                      end=7, x0=50.0, y0=20.0, vx=0.0, vy=0.0)
    return Scene(seed=1, width=270, height=270, fps=12, n_frames=10, background="flat",
                 bg_colours=((100, 100, 100), (100, 100, 100)), objects=(red,))


def test_labels_of_a_known_square():
    scene = _square_scene()  # 270 px: a patch is exactly 10 x 10 px; the square covers cols 5-14, rows 2-11
    lab = tw.patch_labels(scene, 4)
    red = 1 + list(COLOURS).index("red")
    inside = np.zeros((27, 27), bool)
    inside[2:12, 5:15] = True
    assert np.allclose(lab["colour"][inside, red], 1.0) and np.allclose(lab["colour"][~inside, 0], 1.0)
    assert (lab["shape"][inside] == SHAPES.index("square")).all() and (lab["shape"][~inside] == -1).all()
    assert np.allclose(lab["box"][inside], [50 / 270, 20 / 270, 150 / 270, 120 / 270])
    assert np.isnan(lab["box"][~inside]).all()
    gone = tw.patch_labels(scene, 9)  # after the object's span: background everywhere
    assert np.allclose(gone["colour"][..., 0], 1.0) and (gone["shape"] == -1).all()


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_colour_fractions_match_the_rendered_pixels(seed):
    """Independent check: per patch, the share of pixels painted in each object's exact RGB."""
    scene = sample_scene(seed, height=240, seconds=3.0, n_distractors=3)
    frame = scene.target.start
    img = render_frame(scene, frame)
    lab = tw.patch_labels(scene, frame)
    h, w = img.shape[:2]
    rows = np.minimum(np.arange(h) * 27 // h, 26)
    cols = np.minimum(np.arange(w) * 27 // w, 26)
    cell = (rows[:, None] * 27 + cols[None, :]).ravel()
    size = np.bincount(cell, minlength=729)
    for obj in scene.objects:
        painted = (img.reshape(-1, 3) == np.array(obj.rgb)).all(1)
        share = np.bincount(cell[painted], minlength=729) / size
        got = lab["colour"][..., 1 + list(COLOURS).index(obj.colour)].ravel()
        assert np.abs(share - got).max() < 1e-6


@pytest.fixture(scope="module")
def grafted(tmp_path_factory):
    root = tmp_path_factory.mktemp("tower")
    tw.pretrain(root / "tower", frames=8, steps=2, batch=2, val_frames=4)
    return root / "tower", tw.graft(SHIPPED, root / "tower", root / "grafted", fit_frames=8, fit_steps=3)


def test_grafted_model_loads_with_the_new_tower_and_keeps_the_rest(grafted):
    from safetensors.torch import load_file

    from stchat.model.loading import load_model
    from stchat.processing.image import preprocess

    tower_dir, out = grafted
    before = load_file(str(SHIPPED / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))
    kept = [k for k in before if not k.startswith(("model.vision_tower.", "model.mm_projector."))]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)
    assert after["model.mm_projector.0.weight"].shape == (128, tw.TowerSizes().hidden_size)
    model, _ = load_model(str(out), dtype=torch.float32)
    assert model.config.mm_hidden_size == tw.TowerSizes().hidden_size
    body = tw.build_tower(tw.TowerSizes())
    body.load_state_dict(load_file(str(tower_dir / "tower.safetensors")))
    frame = render_frame(_square_scene(), 4)
    px = preprocess(frame)
    with torch.no_grad():
        ref = body(px)  # SDPA, as trained
        got = model.model.vision_tower(px)  # eager, as the official tower runs
        assert torch.allclose(got, ref, atol=1e-4)
        assert model.encode_image(px).shape == (729, model.config.hidden_size)


def test_graft_without_the_saved_bank_redraws_the_same_frames(grafted, tmp_path):
    """A committed tower has no 1.8 GB bank beside it: the graft redraws the bank's first frames (same
    seeds), so the refitted projector is the same."""
    import shutil

    from safetensors.torch import load_file

    tower_dir, out = grafted
    bare = tmp_path / "tower"
    shutil.copytree(tower_dir, bare, ignore=shutil.ignore_patterns("bank_*.npz"))
    again = tw.graft(SHIPPED, bare, tmp_path / "grafted", fit_frames=8, fit_steps=3)
    a, b = load_file(str(out / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
