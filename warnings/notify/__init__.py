"""Notification sinks (console, file; DingTalk and email come with the notification issue)."""
