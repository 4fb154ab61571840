"""The hub's settings as a Dagster resource, so runs launched from the UI see the same configuration
as the CLI. Every field is optional: unset means the environment (HUILIU_*) decides."""


import dagster as dg

from pipelines.settings import Settings


class HubSettings(dg.ConfigurableResource):
    home: str | None = None
    drop_root: str | None = None
    api_url: str | None = None
    today: str | None = None  # YYYY-MM-DD: the hub's business date (replays, the demo)

    def settings(self) -> Settings:
        overrides = {k: v for k, v in {"home": self.home, "drop_root": self.drop_root,
                                       "api_url": self.api_url, "today": self.today}.items()
                     if v is not None}
        return Settings(**overrides)
