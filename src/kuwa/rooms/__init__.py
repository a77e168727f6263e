"""Chat rooms: prompts, answers and their versions, feedback, sharing (database side)."""

from kuwa.rooms.feedback import FLAGS, Feedbacks
from kuwa.rooms.service import Rooms
from kuwa.rooms.sharing import ROLES, Sharing
from kuwa.rooms.titles import make_title
from kuwa.rooms.transfer import Transfer
from kuwa.rooms.trash import Trash

__all__ = ["FLAGS", "ROLES", "Feedbacks", "Rooms", "Sharing", "Transfer", "Trash", "make_title"]
