"""Browser-safe MP4 writing with PyAV: H.264 (libx264) yuv420p, AAC audio, ``+faststart``.

yuv420p and even dimensions are what every browser's H.264 decoder accepts; ``faststart`` moves the index
to the front so playback starts before the download ends. Frames carry their own timestamps (in the
writer's time base), so variable frame rates survive. Audio is either copied packets of the source
(``audio_copy``: an AAC/MP3 stream to use as the template, see :mod:`stchat.video.audio`) with their own
timestamps, or encoded to AAC from float32 sample blocks with sample-count timestamps starting at 0. Both
share the video's origin (the clip's first frame is 0), which is what keeps them in sync.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stchat.errors import VideoError
from stchat.video.audio import AudioFormat


def even_size(width: int, height: int) -> tuple[int, int]:
    """The encoded size: yuv420p needs even width and height, so odd sizes gain one edge pixel."""
    return width + (width % 2), height + (height % 2)


def pad_even(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    ew, eh = even_size(w, h)
    if (ew, eh) == (w, h):
        return rgb
    return np.pad(rgb, ((0, eh - h), (0, ew - w), (0, 0)), mode="edge")


class Mp4Writer:
    """Write RGB frames (and optionally audio) to an MP4 file."""

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: Fraction,
        time_base: Fraction,
        audio: AudioFormat | None = None,
        crf: int = 20,
        preset: str = "superfast",
        audio_copy: av.AudioStream | None = None,
    ) -> None:
        self.path = Path(path)
        self.width, self.height = even_size(width, height)
        self.time_base = time_base
        try:
            # A 90 kHz movie clock (FFmpeg's default is 1 ms): a track's start offset is an edit list
            # entry on that clock, and copied audio that starts 2.667 ms into the clip must not move to 2.
            self._out = av.open(
                str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"},
                container_options={"movie_timescale": "90000"},
            )
        except (av.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot write {self.path}: {exc}") from None
        vs = self._out.add_stream("libx264", rate=fps)
        vs.width, vs.height = self.width, self.height
        vs.pix_fmt = "yuv420p"
        vs.time_base = time_base
        vs.codec_context.time_base = time_base
        vs.codec_context.options = {"crf": str(crf), "preset": preset}
        vs.thread_type = "AUTO"
        self._video = vs
        self._last_pts: int | None = None
        self._audio = None
        self._fifo: av.AudioFifo | None = None
        self._audio_fmt = audio
        self._audio_samples = 0
        if audio_copy is not None:  # packets copied from the source: no encoder
            self._audio = self._out.add_stream_from_template(audio_copy)
            self._audio_fmt = None
        elif audio is not None:
            stream = self._out.add_stream("aac", rate=audio.sample_rate, layout=audio.layout)
            stream.bit_rate = 128_000 if audio.channels == 2 else 96_000
            self._audio = stream
            self._fifo = av.AudioFifo()

    # -- video ---------------------------------------------------------------------------------------
    def write_frame(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one RGB frame at ``pts`` (in ``time_base`` units); timestamps must increase."""
        import cv2  # lazily: the YUV path (write_video_frame) and probing never need OpenCV

        # OpenCV's RGB->I420 is the same BT.601 limited-range matrix swscale applies (within one level)
        # and about twice as fast, which matters: colour conversion was a third of the encode time.
        yuv = cv2.cvtColor(pad_even(rgb), cv2.COLOR_RGB2YUV_I420)
        self.write_video_frame(av.VideoFrame.from_ndarray(yuv, format="yuv420p"), pts)

    def write_video_frame(self, frame: av.VideoFrame, pts: int) -> None:
        """Encode a yuv420p frame of the writer's size at ``pts`` as is (no colour conversion, no copy).

        The same frame object may go to several writers (the clip and the full video share a pass):
        the encoder takes its own reference at ``encode``, so changing ``pts`` afterwards is safe.
        """
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1  # never hand the muxer a non-increasing timestamp
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self.time_base
        # A decoded frame carries its source picture type; x264 would copy the source's GOP from it.
        frame.pict_type = av.video.frame.PictureType.NONE
        self._out.mux(self._video.encode(frame))

    # -- audio ---------------------------------------------------------------------------------------
    def write_audio_packet(self, packet: av.Packet) -> None:
        """Mux one copied source packet (timestamps already relative to the clip's first frame)."""
        if self._audio is None or self._audio_fmt is not None:
            raise VideoError(f"{self.path.name}: this writer does not copy audio packets")
        packet.stream = self._audio
        self._out.mux(packet)

    def write_audio(self, samples: np.ndarray) -> None:
        """Append float32 ``(channels, n)`` samples; the first sample plays at time 0."""
        if self._audio is None or self._fifo is None or self._audio_fmt is None:
            return
        if samples.shape[1] == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples, dtype=np.float32), format="fltp", layout=self._audio_fmt.layout
        )
        frame.sample_rate = self._audio_fmt.sample_rate
        frame.pts = None
        self._fifo.write(frame)
        self._drain_audio(final=False)

    def _drain_audio(self, final: bool) -> None:
        assert self._audio is not None and self._fifo is not None
        size = self._audio.codec_context.frame_size or 1024
        while self._fifo.samples >= size or (final and self._fifo.samples > 0):
            chunk = self._fifo.read(min(size, self._fifo.samples))
            chunk.pts = self._audio_samples
            chunk.time_base = Fraction(1, self._audio.codec_context.sample_rate)
            self._audio_samples += chunk.samples
            self._out.mux(self._audio.encode(chunk))

    def close(self) -> None:
        try:
            self._out.mux(self._video.encode(None))
            if self._audio is not None and self._audio_fmt is not None:
                self._drain_audio(final=True)
                self._out.mux(self._audio.encode(None))
        finally:
            self._out.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            try:
                self._out.close()
            except av.FFmpegError:
                pass
