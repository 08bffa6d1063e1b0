// The consent banner of both test pages: vanilla-cookieconsent (npm) with
// three categories. Its cookie, cc_cookie, is set on the registrable domain
// so the gateway on the metrics subdomain sees it. Each choice is passed to
// window.onConsentChoice (set by the page) as {analytics, ads}.
window.startBanner = function () {
  const report = () => {
    const c = {
      analytics: CookieConsent.acceptedCategory('analytics'),
      ads: CookieConsent.acceptedCategory('ads'),
    };
    if (window.onConsentChoice) window.onConsentChoice(c);
  };
  CookieConsent.run({
    // The banner hides from automated browsers by default; this page is for one.
    hideFromBots: false,
    cookie: { name: 'cc_cookie', domain: location.hostname },
    categories: {
      necessary: { enabled: true, readOnly: true },
      analytics: {},
      ads: {},
    },
    onConsent: report,
    onChange: report,
    language: {
      default: 'en',
      translations: {
        en: {
          consentModal: {
            title: 'Cookies',
            description: 'We measure visits and ads.',
            acceptAllBtn: 'Accept all',
            acceptNecessaryBtn: 'Reject all',
            showPreferencesBtn: 'Manage preferences',
          },
          preferencesModal: {
            title: 'Preferences',
            acceptAllBtn: 'Accept all',
            acceptNecessaryBtn: 'Reject all',
            savePreferencesBtn: 'Save preferences',
            closeIconLabel: 'Close',
            sections: [
              { title: 'Necessary', linkedCategory: 'necessary' },
              { title: 'Analytics', linkedCategory: 'analytics' },
              { title: 'Ads', linkedCategory: 'ads' },
            ],
          },
        },
      },
    },
  });
};
