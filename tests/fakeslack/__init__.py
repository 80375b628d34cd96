"""A fake Slack Web API server for end-to-end tests; see FakeSlack."""

from .models import Call, Team, UploadedFile
from .server import FakeSlack
from .spec import SUPPLEMENT

__all__ = ["SUPPLEMENT", "Call", "FakeSlack", "Team", "UploadedFile"]
