import numpy as np

from recipe_sim.task_video import HEIGHT, WIDTH, render_task, write_outputs


def test_task_video_writes_mp4_and_strip(tmp_path):
    frames = render_task("grasp_reach")
    assert len(frames) > 10
    assert frames[0].shape == (HEIGHT, WIDTH + HEIGHT, 3) and frames[0].dtype == np.uint8
    # The robot moves: the colour view changes over the episode.
    assert np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean() > 1.0
    video, strip = write_outputs("grasp_reach", frames, tmp_path)
    assert video.stat().st_size > 10_000 and strip.stat().st_size > 10_000
