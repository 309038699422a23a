"""Pipelines: named sets of deployments (speech-to-text → LLM → text-to-speech) owned by one workspace."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from runinfra_gateway.store.models import PipelineRecord

__all__ = ["Pipeline", "PipelineTable"]


@dataclass(frozen=True, slots=True)
class Pipeline:
    id: str
    workspace_id: str
    speech_to_text: str
    llm: str
    text_to_speech: str
    created: int

    @property
    def deployment_ids(self) -> tuple[str, str, str]:
        return (self.speech_to_text, self.llm, self.text_to_speech)

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "object": "pipeline",
            "workspace_id": self.workspace_id,
            "deployments": {
                "speech_to_text": self.speech_to_text,
                "llm": self.llm,
                "text_to_speech": self.text_to_speech,
            },
            "created": self.created,
        }

    @classmethod
    def from_row(cls, row: PipelineRecord) -> Pipeline:
        return cls(
            id=row.id,
            workspace_id=row.workspace_id,
            speech_to_text=row.speech_to_text,
            llm=row.llm,
            text_to_speech=row.text_to_speech,
            created=int(row.created.timestamp()),
        )


class PipelineTable:
    """Every pipeline, in memory; the request path reads, the admin service writes through."""

    def __init__(self) -> None:
        self._by_id: dict[str, Pipeline] = {}

    def load(self, session: Session) -> None:
        self._by_id = {row.id: Pipeline.from_row(row) for row in session.scalars(select(PipelineRecord))}

    def add(self, pipeline: Pipeline) -> None:
        self._by_id[pipeline.id] = pipeline

    def get(self, pipeline_id: str) -> Pipeline | None:
        return self._by_id.get(pipeline_id)

    def all(self) -> list[Pipeline]:
        return sorted(self._by_id.values(), key=lambda p: p.id)
