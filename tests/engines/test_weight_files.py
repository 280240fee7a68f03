"""Weight files the user names that are not weights (a text file, a video): every loader answers one
line naming the file and the model it should hold, as a ConfigError (exit 2), never torch.load's
multi-line advice; a bad CLIP model name is a usage error too, for every command."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from framesift.cli import main  # noqa: E402
from framesift.errors import ConfigError  # noqa: E402
from tests.engines.clip_helpers import TINY, register_tiny, tiny_model  # noqa: E402


@pytest.fixture()
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "text.txt"
    path.write_text("these are not weights\n" * 20)
    return path


def _one_line(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and "weights_only" not in msg, msg
    return msg


def test_file_format_tells_torch_files_from_others(tmp_path: Path, text_file: Path) -> None:
    from framesift.engines.weights import file_format

    ckpt = tmp_path / "w.pt"
    torch.save({"w": torch.zeros(2)}, ckpt)
    assert file_format(ckpt) == "torch"
    assert file_format(text_file) is None


def test_clip_checkpoint_that_is_a_text_file(text_file: Path) -> None:
    from framesift.engines.models.clip import ClipEmbedder

    register_tiny()
    with pytest.raises(ConfigError) as exc:
        ClipEmbedder(TINY, checkpoint=str(text_file), runtime="torch", device="cpu")
    msg = _one_line(exc)
    assert msg.startswith(f"{text_file}: not a CLIP checkpoint")


def test_clip_checkpoint_of_another_kind_of_tensors(tmp_path: Path) -> None:
    from framesift.engines.models.clip import ClipEmbedder

    ckpt = tmp_path / "other.pt"
    torch.save({"not_clip": torch.zeros(3)}, ckpt)
    with pytest.raises(ConfigError) as exc:
        ClipEmbedder(TINY, checkpoint=str(ckpt), runtime="torch", device="cpu")
    assert f"{ckpt}: not a CLIP {TINY} checkpoint" in _one_line(exc)


def test_transnet_weights_that_are_a_text_file(text_file: Path) -> None:
    from framesift.engines.models.transnet_net import build_network

    with pytest.raises(ConfigError) as exc:
        build_network(text_file)
    msg = _one_line(exc)
    assert msg.startswith(f"{text_file}: not a TransNetV2 checkpoint") and "leave the weights unset" in msg


def test_transnet_weights_of_another_model(tmp_path: Path) -> None:
    from framesift.engines.models.transnet_net import build_network

    ckpt = tmp_path / "clip.pth"
    torch.save(tiny_model().state_dict(), ckpt)
    with pytest.raises(ConfigError) as exc:
        build_network(ckpt)
    assert f"{ckpt}: not a TransNetV2 checkpoint" in _one_line(exc)


def test_sam_checkpoint_that_is_a_text_file(text_file: Path) -> None:
    pytest.importorskip("mobile_sam")
    from framesift.engines.models.sam import build_reference

    with pytest.raises(ConfigError) as exc:
        build_reference("vit_t", text_file)
    msg = _one_line(exc)
    assert msg.startswith(f"{text_file}: not a SAM vit_t checkpoint") and "none for random weights" in msg


def test_sam_checkpoint_of_another_model(tmp_path: Path) -> None:
    pytest.importorskip("mobile_sam")
    from framesift.engines.models.sam import build_reference

    ckpt = tmp_path / "clip.pt"
    torch.save(tiny_model().state_dict(), ckpt)
    with pytest.raises(ConfigError) as exc:
        build_reference("vit_t", ckpt)
    assert f"{ckpt}: not a SAM vit_t checkpoint" in _one_line(exc)


@pytest.mark.parametrize("none", ["none", "None", ""])
def test_sam_checkpoint_none_means_random_weights(none: str) -> None:
    """``--sam-checkpoint none``, as its help says: random weights, not a file named 'none'."""
    pytest.importorskip("mobile_sam")
    from framesift.engines.models.sam import build_reference, checkpoint_path

    assert checkpoint_path(none) is None
    if none == "none":
        assert build_reference("vit_t", none) is not None


def test_yolo_world_checkpoint_that_is_a_text_file(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from framesift.engines.models.yolo_world_export import load_reference

    fake = tmp_path / "world.pt"
    fake.write_text("not a checkpoint\n")
    with pytest.raises(ConfigError) as exc:
        load_reference(fake)
    assert "not a YOLO-World model" in _one_line(exc) and str(fake) in str(exc.value)


def test_unknown_clip_model_is_a_usage_error_in_collect(
    make_clip,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = make_clip("c.mp4", segments=(4,), width=64, height=48)
    rc = main(
        ["collect", str(clip.path), "--model", "nosuchmodel", "-o", str(tmp_path / "o"), "--no-progress"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("framesift: error: unknown CLIP model 'nosuchmodel'")


def test_collect_checkpoint_that_is_a_text_file(
    make_clip,  # type: ignore[no-untyped-def]
    text_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register_tiny()
    clip = make_clip("c.mp4", segments=(4,), width=64, height=48)
    argv = [
        "collect",
        str(clip.path),
        "--model",
        TINY,
        "--checkpoint",
        str(text_file),
        "-o",
        str(tmp_path / "o"),
    ]
    rc = main([*argv, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert (
        err[-1].startswith(f"framesift: error: {text_file}: not a CLIP checkpoint")
        and "weights_only" not in err[-1]
    )
