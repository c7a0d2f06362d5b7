"""The models of ACE's learning roles: the Reflector and the Curator may run elsewhere than the agent.

A 1.5B local agent is cheap to run but a weak critic; ``model.roles.reflector``
/ ``model.roles.curator`` point a role at another model (typically a stronger
OpenAI-compatible endpoint). Each role's model is built from the agent's
``model:`` section with the role's keys laid over it, so the response cache,
timeouts and retries behave the same; its identity (provider:name@endpoint)
goes into the optimizer's report, the PR body and the optimize trace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings

Role = Literal["reflector", "curator"]
ROLES: tuple[Role, ...] = ("reflector", "curator")


def role_settings(settings: Settings, role: Role) -> Settings:
    """``settings`` whose ``model`` section is the role's (role keys over the agent's model)."""
    section = getattr(settings.model.roles, role)
    if section is None:
        return settings
    update = {k: v for k, v in section.model_dump().items() if v is not None}
    if ("base_url" in update or "api_key" in update) and "provider" not in update:
        update["provider"] = "openai"  # an endpoint of its own is never the local model
    model = settings.model.model_copy(update=update)
    return settings.model_copy(update={"model": model})


def role_identity(settings: Settings, role: Role) -> str:
    """``openai:gpt-4o@http://host/v1`` style name of the role's model (the agent's when unset)."""
    from selfheal.models.providers import model_identity

    return model_identity(role_settings(settings, role))


def make_role_model(settings: Settings, role: Role) -> BaseChatModel:
    """The role's chat model (response cache as configured)."""
    from selfheal.models.providers import make_chat_model

    return make_chat_model(role_settings(settings, role))


def has_own_model(settings: Settings, role: Role) -> bool:
    return getattr(settings.model.roles, role) is not None
