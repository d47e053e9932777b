"""Speech: local transcription of voice notes with faster-whisper.

A leaf app (it imports no other EVA app): audio file in, ``Transcript`` out. The worker in
``workers/transcription.py`` ties it to messages. See docs/voice.md.
"""
