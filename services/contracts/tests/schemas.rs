//! Every command, query and event type of every contract has its schema
//! file, and every schema file is some contract's (or an envelope, or the
//! shared definitions): no schema nothing uses, none missing.

use std::collections::BTreeSet;

use concord_bus::schema::{self, FILES, Schemas};
use concord_contracts::audit::AccessLog;
use concord_contracts::crisis::Crisis;
use concord_contracts::deployments::Deployments;
use concord_contracts::intel::Intel;
use concord_contracts::operations::Operations;
use concord_core::decider::Aggregate;
use concord_core::tagged::variant_names;

fn names_of<A: Aggregate>(used: &mut BTreeSet<String>) {
    let service = A::SERVICE;
    used.extend(
        variant_names::<A::Command>()
            .iter()
            .map(|c| schema::command_name(service, c)),
    );
    used.extend(
        variant_names::<A::Query>()
            .iter()
            .map(|q| schema::query_name(service, q)),
    );
    used.extend(
        variant_names::<A::Event>()
            .iter()
            .map(|e| schema::event_name(service, e)),
    );
    // Each of them compiles, $refs to the shared definitions resolved.
    Schemas::for_service(
        service,
        variant_names::<A::Command>(),
        variant_names::<A::Query>(),
        variant_names::<A::Event>(),
    )
    .unwrap_or_else(|e| panic!("{service}: {e}"));
}

#[test]
fn every_schema_file_is_used_and_every_name_has_one() {
    let mut used: BTreeSet<String> = ["envelope/command", "envelope/event", "common"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    names_of::<Operations>(&mut used);
    names_of::<Intel>(&mut used);
    names_of::<Crisis>(&mut used);
    names_of::<Deployments>(&mut used);
    names_of::<AccessLog>(&mut used);
    let files: BTreeSet<String> = FILES.iter().map(|(n, _)| (*n).to_owned()).collect();
    let unused: Vec<&String> = files.difference(&used).collect();
    assert!(unused.is_empty(), "schema files no contract uses: {unused:?}");
    let missing: Vec<&String> = used.difference(&files).collect();
    assert!(missing.is_empty(), "names without a schema file: {missing:?}");
}
