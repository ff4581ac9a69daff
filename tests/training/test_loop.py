"""The shared resumable step loop: checkpoints, previews, progress and cancelling."""

from engine.training.loop import run_steps


def test_checkpoints_previews_and_progress_follow_their_intervals():
    saved, progress, ran = [], [], []
    history = run_steps(lambda index: ran.append(index) or float(index), start=2, steps=9, checkpoint_every=3,
                        save=saved.append, sample_every=4, callback=progress.append, preview=lambda: "image")
    assert ran == list(range(2, 9))
    assert history == {"losses": [float(i) for i in range(2, 9)], "stopped_at": None, "started_at": 2}
    assert saved == [3, 6, 9]  # counted in steps done, as a resumed run's checkpoints are
    assert [p.step for p in progress] == list(range(3, 10)) and all(p.total == 9 for p in progress)
    assert [p.step for p in progress if p.preview == "image"] == [4, 8]
    assert progress[-1].seconds_left == 0


def test_should_stop_ends_the_run_before_the_next_step_without_a_checkpoint():
    saved, ran = [], []
    history = run_steps(lambda index: ran.append(index) or 0.0, start=0, steps=10, checkpoint_every=1,
                        save=saved.append, sample_every=0, should_stop=lambda: len(ran) == 4)
    assert ran == [0, 1, 2, 3] and history["stopped_at"] == 4
    assert saved == [1, 2, 3, 4]


def test_no_save_without_a_folder_or_an_interval():
    history = run_steps(lambda index: 0.0, start=0, steps=4, checkpoint_every=2, save=None, sample_every=0)
    assert history["stopped_at"] is None and len(history["losses"]) == 4
    saved = []
    run_steps(lambda index: 0.0, start=0, steps=4, checkpoint_every=0, save=saved.append, sample_every=0)
    assert saved == []
