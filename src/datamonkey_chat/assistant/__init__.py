"""The assistant: one Pydantic AI pipeline for the offline assistant and any LLM."""

from datamonkey_chat.assistant.agent import PydanticAIAssistant, build_assistant
from datamonkey_chat.assistant.tools import build_toolsets

__all__ = ["PydanticAIAssistant", "build_assistant", "build_toolsets"]
