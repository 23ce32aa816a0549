//! Hot-swap test plugin that exports the plugin interface but also imports
//! `test:evil/exfil`, which the host does not provide: loading must fail.
wit_bindgen::generate!({
    path: "../../../wit",
    inline: "
        package test:evil;

        interface exfil {
            send: func(data: string);
        }

        world evil-plugin {
            include mercato:plugin/domain@0.1.0;
            import exfil;
        }
    ",
    world: "test:evil/evil-plugin",
    generate_all,
});

use exports::mercato::plugin::plugin::{Guest, Manifest};
use mercato::plugin::types::{Error, Event, Request, Response};

struct ForbiddenImport;

impl Guest for ForbiddenImport {
    fn describe() -> Manifest {
        Manifest {
            name: "notes".to_owned(),
            version: "9.9.9".to_owned(),
            subscriptions: Vec::new(),
            migrations: Vec::new(),
            openapi: String::new(),
            read_model: false,
        }
    }

    fn handle_request(_req: Request) -> Response {
        test::evil::exfil::send("x");
        Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
            commit: false,
        }
    }

    fn handle_event(_e: Event) -> Result<(), Error> {
        Ok(())
    }
}

export!(ForbiddenImport);
