"""Jenkins (a pipeline ``sh`` step, or a freestyle job): plain log sections, no step outputs."""

from __future__ import annotations

from collections.abc import Mapping

from bgci.ci.local import Local
from bgci.lock import default_holder


class Jenkins(Local):
    """Jenkins folds stages itself and has no step outputs: only the job identity differs."""

    name = "jenkins"

    @staticmethod
    def detect(environ: Mapping[str, str]) -> bool:
        """JENKINS_URL is set by the controller; BUILD_URL + JOB_NAME also on some agents."""
        build = bool(environ.get("BUILD_URL") and environ.get("JOB_NAME"))
        return bool(environ.get("JENKINS_URL")) or build

    def job_url(self) -> str:
        """``$BUILD_URL``."""
        return self.environ.get("BUILD_URL", "")

    def holder(self) -> str:
        """``jenkins <job> #<build>``; user@host when the job is unknown."""
        job = self.environ.get("JOB_NAME", "")
        build = self.environ.get("BUILD_NUMBER", "")
        if not job:
            return default_holder()
        return f"jenkins {job} #{build}" if build else f"jenkins {job}"
