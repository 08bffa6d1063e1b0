// CloudFront Function (viewer request, runtime cloudfront-js-2.0) for the
// cache behaviour of the first-party path (/metrics/*) whose origin is
// consentgate. It sets X-Forwarded-CountryRegion from CloudFront's
// geolocation ("DE", or "US-CA" with the region header) and removes the
// copy a visitor could send. The origin request policy must forward
// CloudFront-Viewer-Country and CloudFront-Viewer-Country-Region
// (origin-request-policy.json) so that this function sees them, and
// X-Forwarded-CountryRegion so that the origin does.
// consentgate: geo.headers: [X-Forwarded-CountryRegion].
function regionOf(headers) {
    var cc = headers['cloudfront-viewer-country'] ? headers['cloudfront-viewer-country'].value.toUpperCase() : '';
    if (!/^[A-Z]{2}$/.test(cc)) {
        return '';
    }
    var sub = headers['cloudfront-viewer-country-region'] ? headers['cloudfront-viewer-country-region'].value.toUpperCase() : '';
    return /^[A-Z0-9]{1,3}$/.test(sub) ? cc + '-' + sub : cc;
}

function handler(event) {
    var request = event.request;
    var headers = request.headers;
    delete headers['x-forwarded-countryregion'];
    delete headers['cf-ipcountry'];
    delete headers['x-appengine-country'];
    delete headers['x-gclb-country'];
    var region = regionOf(headers);
    if (region) {
        headers['x-forwarded-countryregion'] = { value: region };
    }
    return request;
}
