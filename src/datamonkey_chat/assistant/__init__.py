"""The assistant: one Pydantic AI pipeline for any LLM; the offline assistant runs its
Pydantic AI model and the same tools directly (tested against that pipeline)."""

from datamonkey_chat.assistant.agent import PydanticAIAssistant, build_assistant
from datamonkey_chat.assistant.tools import build_toolsets

__all__ = ["PydanticAIAssistant", "build_assistant", "build_toolsets"]
