//! The admin's preferences that are not about mail: the interface language.
//!
//! The UI translates its own texts (ui/i18n.js, ui/locales/); the engine only keeps the choice,
//! so every window and a restart show the same language.

use crate::{Core, CoreError};

/// Settings key of the interface language.
const LANGUAGE_KEY: &str = "ui.language";

/// The interface languages, by id (`en`, `de`).
pub const LANGUAGES: &[&str] = &["en", "de"];

impl Core {
    /// The interface language (`en` until one is chosen).
    pub async fn ui_language(&self) -> Result<String, CoreError> {
        Ok(self
            .store()
            .setting::<String>(LANGUAGE_KEY)
            .await?
            .filter(|l| LANGUAGES.contains(&l.as_str()))
            .unwrap_or_else(|| "en".into()))
    }

    /// Keeps the interface language; one of [`LANGUAGES`].
    pub async fn set_ui_language(&self, language: &str) -> Result<(), CoreError> {
        let language = language.trim().to_ascii_lowercase();
        if !LANGUAGES.contains(&language.as_str()) {
            return Err(CoreError::InvalidInput(format!(
                "'{language}' is not an interface language; choose one of: {}",
                LANGUAGES.join(", ")
            )));
        }
        self.store().set_setting(LANGUAGE_KEY, &language).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_language_is_kept_and_an_unknown_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let core = crate::Core::open_with_secrets(
            dir.path(),
            mailroom_secrets::Secrets::with_service("mailroom-test-preferences"),
        )
        .await
        .unwrap();
        assert_eq!(core.ui_language().await.unwrap(), "en");
        core.set_ui_language("DE").await.unwrap();
        assert_eq!(core.ui_language().await.unwrap(), "de");
        let err = core.set_ui_language("fr").await.unwrap_err();
        assert!(err.to_string().contains("choose one of: en, de"), "{err}");
    }
}
