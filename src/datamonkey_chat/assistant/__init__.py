"""The assistant: one Pydantic AI pipeline for any LLM and the offline assistant's model;
the offline assistant's unstreamed replies run that model and the same tools directly."""

from datamonkey_chat.assistant.agent import PydanticAIAssistant, build_assistant
from datamonkey_chat.assistant.tools import build_toolsets

__all__ = ["PydanticAIAssistant", "build_assistant", "build_toolsets"]
