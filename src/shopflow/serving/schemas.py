"""Request and response bodies of the propensity service (DESIGN.md §5).

Pydantic models with a description on every field, so BentoML's OpenAPI page documents
the contract. User ids are text everywhere in Shopflow; the API also accepts integers
(many shops number their customers) and turns them into text. Anything else (floats,
booleans, nulls, objects) is rejected with an error that names the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

UserId = Annotated[
    StrictStr | StrictInt,
    Field(description="A shopper id: a string, or an integer that is read as its text."),
]


class PredictRequest(BaseModel):
    """``POST /predict`` body."""

    model_config = ConfigDict(extra="forbid")

    user_ids: list[UserId] = Field(
        description="Shoppers to score, 1 to serving.max_batch of them; ids are strings "
        "or integers (integers become text).",
        examples=[["17850", 13047]],
    )


class Prediction(BaseModel):
    """One shopper's score."""

    user_id: str = Field(description="The shopper id as text.")
    purchase_probability: float = Field(
        ge=0.0, le=1.0, description="P(the shopper buys within the task horizon)."
    )
    known_user: bool = Field(
        description="False: no features for this shopper online, so the score is the "
        "model's cold-start probability (its training base rate)."
    )


class PredictResponse(BaseModel):
    """``POST /predict`` answer."""

    model_version: str = Field(description="Version of the model that scored this request.")
    predictions: list[Prediction] = Field(description="One entry per requested id, in order.")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the service: a message, never a stack trace."""

    error: str = Field(description="What was wrong, naming the field or the limit.")
