//! Compose/stack files for `docker stack deploy`, checked and fixed for host-mode
//! Interlock routing: `yaml` keeps every node's place in the text, `compose` reads what
//! Docker makes of the file, `lint` finds what works against host-mode routing, `fix`
//! rewrites it in place. Pure: the commands read and write the files.

pub mod compose;
pub mod edit;
pub mod fix;
pub mod lint;
pub mod yaml;
