"""Request and response bodies of the Shopflow service (docs/DESIGN.md §5): ``/predict``
and ``/recommend``.

Pydantic models with a description on every field, so BentoML's OpenAPI page documents
the contract. User ids are text everywhere in Shopflow; the API also accepts integers
(many shops number their customers) and turns them into text. Anything else (floats,
booleans, nulls, objects, ids over ``MAX_ID_LENGTH`` characters or past 64 bits) is
rejected with an error that names the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from shopflow.contract import MAX_ID_LENGTH, MAX_K

UserId = Annotated[
    Annotated[StrictStr, Field(max_length=MAX_ID_LENGTH)]
    | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)],
    Field(description=f"A shopper id: a non-blank string of at most {MAX_ID_LENGTH} "
          "characters, or a 64-bit integer that is read as its text."),
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
    model_version: str | None = Field(
        default=None, description="Only during an A/B test (serving.experiment): the model "
        "that scored this shopper, the one of its arm.")
    arm: Literal["champion", "challenger"] | None = Field(
        default=None, description="Only during an A/B test: the shopper's sticky arm.")


class PredictResponse(BaseModel):
    """``POST /predict`` answer."""

    model_version: str = Field(description="Version of the model that scored this request "
                               "(during an A/B test: the champion's unless every shopper "
                               "is in the challenger arm; each prediction names its own).")
    predictions: list[Prediction] = Field(description="One entry per requested id, in order.")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer of the service: a message, never a stack trace."""

    error: str = Field(description="What was wrong, naming the field or the limit.")


class RecommendRequest(BaseModel):
    """``POST /recommend`` body."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId = Field(
        description="The shopper to recommend for: a non-empty string, or an integer that "
        "is read as its text.",
        examples=["17850"],
    )
    k: StrictInt = Field(default=10, ge=1, le=MAX_K,
                         description=f"How many items, 1 to {MAX_K}.")
    exclude_purchased: StrictBool = Field(
        default=False,
        description="Leave out items the shopper already bought (the list is filled up "
        "with popular items).",
    )


class RecommendedItem(BaseModel):
    """One recommended item."""

    item_id: str = Field(description="The item id as text.")
    score: float = Field(description="The ranker's score; higher is recommended earlier.")
    rank: int = Field(ge=1, description="1 = the best recommendation.")


class RecommendResponse(BaseModel):
    """``POST /recommend`` answer."""

    model_version: str = Field(description="Version of the recommender that answered "
                               "('popularity' when no recommender is in production).")
    user_id: str = Field(description="The shopper id as text.")
    cold_start: bool = Field(description="True: the shopper had no recent activity at the "
                             "snapshot, so the items are the popular ones.")
    family: str = Field(description="Ranker family that ordered these items "
                        "(lightgbm, torch, or popularity for cold starts).")
    snapshot_time: str = Field(description="When the lists were computed (newest event, UTC).")
    items: list[RecommendedItem] = Field(description="Best first; ranks 1..k, scores "
                                         "descending.")
