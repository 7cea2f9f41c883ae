//! OpenAPI schemas that utoipa's derive would get wrong: an untagged enum with a catch-all
//! variant (`Other(Value)`) matches several of its `oneOf` members at once, which JSON
//! Schema's `oneOf` forbids; these enums are described with `anyOf` instead.

use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// Implements the schema of untagged enum `$t` as `anyOf` its typed members (by reference)
/// and any object (its catch-all variant).
macro_rules! any_of {
    ($t:ty, $what:literal, [$($m:ty),+ $(,)?]) => {
        impl PartialSchema for $t {
            fn schema() -> RefOr<Schema> {
                AnyOfBuilder::new()
                    $(.item(Ref::from_schema_name(<$m as ToSchema>::name())))+
                    .item(
                        ObjectBuilder::new()
                            .schema_type(Type::Object)
                            .description(Some(concat!("A ", $what, " of a shape this version does not read."))),
                    )
                    .into()
            }
        }

        impl ToSchema for $t {
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                $(
                    schemas.push((<$m as ToSchema>::name().into(), <$m as PartialSchema>::schema()));
                    <$m as ToSchema>::schemas(schemas);
                )+
            }
        }
    };
}

any_of!(
    crate::jobs::JobSpec,
    "request",
    [
        crate::jobs::TrainJob,
        crate::api::SimulateRequest,
        crate::jobs::CompileJob
    ]
);
any_of!(
    crate::jobs::JobOutput,
    "result",
    [
        crate::reports::SimulationResult,
        crate::reports::TrainingResult,
        crate::records::PacketRecord
    ]
);
any_of!(
    crate::reports::PhaseMetrics,
    "figure set",
    [
        crate::reports::AuditReport,
        crate::reports::DistillProgress,
        crate::reports::WorldModelFit,
        crate::reports::DistillStart,
        crate::reports::PhantomStep,
        crate::reports::FitStart
    ]
);
