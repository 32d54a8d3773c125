"""log.csv of an interrupted run stays a valid CSV on resume (issue 12: a resumed log lost its header)."""

from __future__ import annotations

import pytest

from masktwins_bio.training.runlog import RunLogger

H = "step,tag,value\r\n"


@pytest.mark.parametrize("before, resume_step, after", [
    ("", None, H),                                                     # created, then the disk was full
    (H + "1,loss,0.5\r\n", None, H + "1,loss,0.5\r\n"),                 # intact: untouched
    ("1,loss,0.5\r\n", None, H + "1,loss,0.5\r\n"),                     # header lost
    (H + "1,loss,0.5\r\n2,lo", None, H + "1,loss,0.5\r\n"),             # torn last row (kill -9)
    (H + "1,loss,0.5\r\n2,loss,0.4\r\n3,loss,0.3\r\n", 2,               # rows after the resumed checkpoint
     H + "1,loss,0.5\r\n2,loss,0.4\r\n"),
])
def test_an_interrupted_log_is_repaired(tmp_path, before, resume_step, after):
    (tmp_path / "log.csv").write_bytes(before.encode())
    logger = RunLogger(tmp_path, tensorboard=False, resume_step=resume_step)
    logger.close()
    assert (tmp_path / "log.csv").read_bytes().decode() == after
    logger = RunLogger(tmp_path, tensorboard=False, resume_step=resume_step)
    logger.log(9, {"loss": 0.25})
    logger.close()
    assert RunLogger.read(tmp_path)[-1] == (9, "loss", 0.25)
