"""Chat rooms: prompts, answers and their versions, feedback, sharing (database side)."""

from kuwa.rooms.service import FLAGS, ROLES, Rooms, make_title

__all__ = ["FLAGS", "ROLES", "Rooms", "make_title"]
