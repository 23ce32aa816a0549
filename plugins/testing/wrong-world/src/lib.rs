//! Hot-swap test component that is not a plugin: it implements its own world
//! (`test:other/other`, one `greet` export) instead of `mercato:plugin/domain`,
//! so the host must refuse to load it.
wit_bindgen::generate!({
    inline: "
        package test:other;

        world other {
            export greet: func() -> string;
        }
    ",
    world: "test:other/other",
});

struct WrongWorld;

impl Guest for WrongWorld {
    fn greet() -> String {
        "hello from the wrong world".to_owned()
    }
}

export!(WrongWorld);
